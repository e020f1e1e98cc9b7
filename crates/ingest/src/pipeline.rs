//! Splits a text stream into chunks of whole records and parses them on all
//! cores.
//!
//! The reading thread only looks for record ends (newlines outside quotes,
//! found with `memchr`), counts lines and enforces the line-length limit;
//! the workers parse the chunks and aggregate into their own state, which the
//! caller merges. Line numbers stay exact: each chunk knows its first line.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

/// A run of whole records.
#[derive(Debug)]
pub struct Chunk {
    pub data: Vec<u8>,
    /// 1-based line number of the chunk's first byte.
    pub first_line: u64,
    /// 0 for the first chunk of the file (which holds the header, if any).
    pub seq: u64,
    /// The chunk contains a quote byte (so fields need a quote-aware parser).
    pub quoted: bool,
}

/// Why the stream could not be cut into records.
#[derive(Debug)]
pub enum SplitError {
    Io(std::io::Error),
    LineTooLong {
        line: u64,
    },
    /// The file ends inside a quoted field that starts on `line`.
    EndsInQuote {
        line: u64,
    },
}

/// Counts bytes read from the underlying file (for progress bars).
pub struct CountingReader<R> {
    pub inner: R,
    pub count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

pub struct Splitter<R> {
    reader: R,
    /// Buffers handed back by the workers, reused to avoid fresh pages.
    pool: Option<mpsc::Receiver<Vec<u8>>>,
    quote: Option<u8>,
    max_line: usize,
    block: usize,
    carry: Vec<u8>,
    next_line: u64,
    seq: u64,
    eof: bool,
    started: bool,
}

impl<R: Read> Splitter<R> {
    /// `quote`: the quote byte of a delimited format (newlines inside quotes
    /// do not end records); `None` for line-based formats.
    pub fn new(reader: R, quote: Option<u8>, max_line: usize, block: usize) -> Self {
        Splitter {
            reader,
            pool: None,
            quote,
            max_line,
            block: block.max(1024),
            carry: Vec::new(),
            next_line: 1,
            seq: 0,
            eof: false,
            started: false,
        }
    }

    fn fill(&mut self, buf: &mut Vec<u8>, want: usize) -> Result<(), SplitError> {
        while buf.len() < want && !self.eof {
            let old = buf.len();
            buf.resize(want, 0);
            match self.reader.read(&mut buf[old..]) {
                Ok(0) => {
                    buf.truncate(old);
                    self.eof = true;
                }
                Ok(n) => buf.truncate(old + n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => buf.truncate(old),
                Err(e) => {
                    buf.truncate(old);
                    return Err(SplitError::Io(e));
                }
            }
        }
        Ok(())
    }

    /// The next chunk, or `None` at the end.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, SplitError> {
        let mut buf = self
            .pool
            .as_ref()
            .and_then(|p| p.try_recv().ok())
            .unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(&self.carry);
        self.carry.clear();
        let mut want = self.block.max(buf.len() + self.block / 2);
        loop {
            self.fill(&mut buf, want)?;
            if !self.started {
                self.started = true;
                if buf.starts_with(b"\xEF\xBB\xBF") {
                    buf.drain(..3);
                }
            }
            if buf.is_empty() {
                return Ok(None);
            }
            let scan = self.scan(&buf)?;
            match scan.split {
                Some((end, lines)) => {
                    self.carry.extend_from_slice(&buf[end + 1..]);
                    buf.truncate(end + 1);
                    return Ok(Some(self.emit(buf, lines)));
                }
                None if self.eof => {
                    // The rest is the last record, without a final newline.
                    if let Some(line) = scan.open_quote_line {
                        return Err(SplitError::EndsInQuote { line });
                    }
                    if buf.len() > self.max_line {
                        return Err(SplitError::LineTooLong {
                            line: self.next_line,
                        });
                    }
                    return Ok(Some(self.emit(buf, 1)));
                }
                None => {
                    // No record end yet: read more, within the line limit.
                    if buf.len() - scan.last_newline.map_or(0, |p| p + 1) > self.max_line {
                        return Err(SplitError::LineTooLong {
                            line: self.next_line + scan.newlines,
                        });
                    }
                    want = buf.len() + self.block;
                }
            }
        }
    }

    fn emit(&mut self, data: Vec<u8>, lines: u64) -> Chunk {
        let quoted = self
            .quote
            .is_some_and(|q| memchr::memchr(q, &data).is_some());
        let chunk = Chunk {
            data,
            first_line: self.next_line,
            seq: self.seq,
            quoted,
        };
        self.seq += 1;
        self.next_line += lines;
        chunk
    }

    fn scan(&self, buf: &[u8]) -> Result<Scan, SplitError> {
        let mut s = Scan::default();
        let mut prev = None::<usize>;
        let mut check = |p: usize, s: &mut Scan| -> Result<(), SplitError> {
            let start = prev.map_or(0, |q| q + 1);
            if p - start > self.max_line {
                return Err(SplitError::LineTooLong {
                    line: self.next_line + s.newlines,
                });
            }
            prev = Some(p);
            s.newlines += 1;
            s.last_newline = Some(p);
            Ok(())
        };
        match self.quote {
            None => {
                for p in memchr::memchr_iter(b'\n', buf) {
                    check(p, &mut s)?;
                    s.split = Some((p, s.newlines));
                }
            }
            Some(q) => {
                let mut open = false;
                for p in memchr::memchr2_iter(q, b'\n', buf) {
                    if buf[p] == q {
                        open = !open;
                        if open {
                            s.open_quote_line = Some(self.next_line + s.newlines);
                        } else {
                            s.open_quote_line = None;
                        }
                    } else {
                        check(p, &mut s)?;
                        if !open {
                            s.split = Some((p, s.newlines));
                        }
                    }
                }
            }
        }
        Ok(s)
    }
}

#[derive(Default)]
struct Scan {
    /// Last record end: (byte offset of its newline, newlines up to it).
    split: Option<(usize, u64)>,
    newlines: u64,
    last_newline: Option<usize>,
    open_quote_line: Option<u64>,
}

/// Runs `process` over the chunks on `threads` workers, each with its own
/// state from `make`. `halt` is checked between chunks: once it is below a
/// chunk's first line, the reader stops producing.
pub fn run<R, W, M, P>(
    splitter: &mut Splitter<R>,
    threads: usize,
    halt: &AtomicU64,
    make: M,
    process: P,
) -> Result<Vec<W>, SplitError>
where
    R: Read,
    W: Send,
    M: Fn() -> W + Sync,
    P: Fn(&mut W, &Chunk) + Sync,
{
    let threads = threads.max(1);
    let (tx, rx) = mpsc::sync_channel::<Chunk>(threads * 2);
    let rx = Mutex::new(rx);
    let (back_tx, back_rx) = mpsc::channel::<Vec<u8>>();
    splitter.pool = Some(back_rx);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let rx = &rx;
                let make = &make;
                let process = &process;
                let back = back_tx.clone();
                scope.spawn(move || {
                    let mut state = make();
                    loop {
                        let next = rx.lock().map(|r| r.recv());
                        match next {
                            Ok(Ok(chunk)) => {
                                if chunk.first_line <= halt.load(Ordering::Relaxed) {
                                    process(&mut state, &chunk);
                                }
                                let _ = back.send(chunk.data);
                            }
                            _ => break,
                        }
                    }
                    state
                })
            })
            .collect();
        let mut result = Ok(());
        loop {
            match splitter.next_chunk() {
                Ok(Some(chunk)) => {
                    if chunk.first_line > halt.load(Ordering::Relaxed) {
                        break;
                    }
                    if tx.send(chunk).is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        drop(tx);
        drop(back_tx);
        let states: Vec<W> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect();
        splitter.pool = None;
        result.map(|()| states)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(
        text: &str,
        quote: Option<u8>,
        block: usize,
        max_line: usize,
    ) -> Result<Vec<(u64, String)>, SplitError> {
        let mut s = Splitter::new(text.as_bytes(), quote, max_line, block);
        s.block = block; // below the usual minimum, to exercise carrying
        let mut out = Vec::new();
        while let Some(c) = s.next_chunk()? {
            out.push((c.first_line, String::from_utf8(c.data).unwrap()));
        }
        Ok(out)
    }

    #[test]
    fn chunks_hold_whole_records_and_know_their_lines() {
        let text = "h\na,1\nb,\"x\ny\"\nc,3\nd,4";
        for block in [1, 2, 3, 5, 8, 13, 100] {
            let got = chunks(text, Some(b'"'), block, 1000).unwrap();
            let joined: String = got.iter().map(|(_, s)| s.as_str()).collect();
            assert_eq!(joined, text, "block {block}");
            let mut line = 1;
            for (first, s) in &got {
                assert_eq!(*first, line, "block {block}: {got:?}");
                assert!(s.ends_with('\n') || s.ends_with('4'));
                assert_eq!(s.matches('"').count() % 2, 0, "quotes stay in one chunk");
                line += s.matches('\n').count() as u64;
            }
        }
    }

    #[test]
    fn long_lines_and_open_quotes_are_errors() {
        assert!(matches!(
            chunks("ab\nabcdefgh\nx\n", None, 4, 5),
            Err(SplitError::LineTooLong { line: 2 })
        ));
        assert!(matches!(
            chunks("ab\nabcdefghij", None, 4, 5),
            Err(SplitError::LineTooLong { line: 2 })
        ));
        assert!(matches!(
            chunks("a,1\nb,\"oops\nc,2\n", Some(b'"'), 4, 100),
            Err(SplitError::EndsInQuote { line: 2 })
        ));
    }

    #[test]
    fn bom_is_dropped() {
        let got = chunks("\u{feff}a\nb\n", None, 100, 100).unwrap();
        assert_eq!(got[0].1, "a\nb\n");
    }
}
