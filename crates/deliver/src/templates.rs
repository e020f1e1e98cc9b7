//! Message templates: minijinja files in the moments folder (`template =
//! "templates/win-back.html"`), rendered with the customer's context.
//! HTML templates are auto-escaped; a `.txt` file of the same name, when
//! present, is the plain-text part, otherwise the text is taken from the
//! HTML.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use minijinja::Environment;
use serde_json::Value;

use crate::DeliverError;

/// Limits on one rendering. Templates are the operator's own files, but a
/// slip (a loop over a loop, a sequence repeated a billion times) must not
/// hang the delivery workers or eat the memory:
/// - fuel: minijinja's count of executed instructions (loops, calls);
/// - output: the rendered text's size (emails over 100 KB get clipped by
///   Gmail anyway);
/// - time: the rendering runs on a renderer thread and is given up after
///   the deadline (some work happens inside one instruction, e.g. printing a
///   sequence repeated lazily, which fuel does not count); a template
///   that ran past it is not rendered again until the templates are
///   reloaded, so that at most one runaway thread spins per template.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub fuel: u64,
    pub max_output: usize,
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            fuel: 5_000_000,
            max_output: 2 << 20,
            deadline: Duration::from_secs(2),
        }
    }
}

/// The templates of one moments folder.
pub struct Templates {
    env: Arc<Environment<'static>>,
    dir: PathBuf,
    limits: Limits,
    /// Templates (names, or a one-line template's source) whose rendering
    /// ran past the deadline.
    runaway: Mutex<HashSet<String>>,
}

fn template_err(name: &str, e: impl std::fmt::Display) -> DeliverError {
    DeliverError::Template {
        name: name.to_string(),
        message: e.to_string(),
    }
}

/// Collects the output, failing once it passes the limit.
struct Capped {
    out: Vec<u8>,
    max: usize,
    overflowed: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > self.max {
            self.overflowed = true;
            return Err(std::io::Error::other("output limit"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Why a rendering failed: a limit, or anything else (a syntax error,
/// an undefined filter, bad data).
enum Failed {
    Limit(String),
    Other(String),
}

impl Failed {
    fn named(self, name: &str) -> DeliverError {
        match self {
            Failed::Limit(m) | Failed::Other(m) => template_err(name, m),
        }
    }
}

/// A template file's name, or a one-line template's text.
enum Source {
    Named(String),
    Inline(String),
}

/// One rendering, for a renderer thread.
struct Job {
    env: Arc<Environment<'static>>,
    source: Source,
    ctx: Value,
    max: usize,
    reply: mpsc::Sender<Result<String, Failed>>,
}

impl Job {
    fn run(self) {
        let Job {
            env,
            source,
            ctx,
            max,
            reply,
        } = self;
        let mut out = Capped {
            out: Vec::new(),
            max,
            overflowed: false,
        };
        let done = match &source {
            Source::Named(n) => env
                .get_template(n)
                .and_then(|t| t.render_captured_to(&ctx, &mut out).map(|_| ())),
            Source::Inline(s) => env
                .template_from_str(s)
                .and_then(|t| t.render_captured_to(&ctx, &mut out).map(|_| ())),
        };
        let result = match done {
            Ok(()) => String::from_utf8(out.out).map_err(|e| Failed::Other(e.to_string())),
            Err(_) if out.overflowed => Err(Failed::Limit(format!(
                "the output is larger than {max} bytes"
            ))),
            Err(e) if e.kind() == minijinja::ErrorKind::OutOfFuel => Err(Failed::Limit(
                "rendering ran out of fuel (too many loop iterations or calls)".into(),
            )),
            Err(e) => Err(Failed::Other(detailed(&e))),
        };
        let _ = reply.send(result);
    }
}

/// The calling thread's renderer: a thread of its own that renders one
/// job after another (starting a thread per rendering cost ~50 µs, twenty
/// times the rendering). Abandoned when a rendering runs past its
/// deadline (it exits once that rendering ends); a new one starts for the
/// next job.
#[derive(Default)]
struct Renderer {
    jobs: Option<mpsc::Sender<Job>>,
}

impl Renderer {
    fn run(&mut self, job: Job) -> std::io::Result<()> {
        let job = match &self.jobs {
            Some(jobs) => match jobs.send(job) {
                Ok(()) => return Ok(()),
                // Its thread is gone (a panic inside minijinja).
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("render".into())
            .spawn(move || {
                for job in rx {
                    job.run();
                }
            })?;
        let sent = tx.send(job);
        self.jobs = Some(tx);
        sent.map_err(|_| std::io::Error::other("the renderer stopped"))
    }

    fn abandon(&mut self) {
        self.jobs = None;
    }
}

thread_local! {
    static RENDERER: std::cell::RefCell<Renderer> = std::cell::RefCell::new(Renderer::default());
}

impl Templates {
    /// Templates read from `dir` (on first use, then cached), with the
    /// default [`Limits`].
    pub fn new(dir: &Path) -> Templates {
        Templates::with_limits(dir, Limits::default())
    }

    pub fn with_limits(dir: &Path, limits: Limits) -> Templates {
        let mut env = Environment::new();
        env.set_loader(minijinja::path_loader(dir));
        env.set_fuel(Some(limits.fuel));
        Templates {
            env: Arc::new(env),
            dir: dir.to_path_buf(),
            limits,
            runaway: Mutex::default(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the template exists and parses, and renders within the
    /// limits with no customer data (for `moments check` and loading a
    /// moment; other errors of that trial rendering are the data's, not
    /// the template's, and do not count).
    pub fn check(&self, name: &str) -> Result<(), DeliverError> {
        self.env
            .get_template(name)
            .map_err(|e| template_err(name, detailed(&e)))?;
        match self.guarded(Source::Named(name.to_string()), &Value::Null) {
            Err(Failed::Limit(m)) => Err(template_err(
                name,
                format!("a trial rendering with no customer data: {m}"),
            )),
            _ => Ok(()),
        }
    }

    /// Renders `source` with `ctx` within the limits.
    fn guarded(&self, source: Source, ctx: &Value) -> Result<String, Failed> {
        let key = match &source {
            Source::Named(n) => n.clone(),
            Source::Inline(s) => format!("inline:{s}"),
        };
        let deadline = self.limits.deadline;
        let stopped = || {
            Failed::Limit(format!(
                "rendering took longer than {} s and was stopped; not rendered again until the templates are reloaded",
                deadline.as_secs_f64()
            ))
        };
        if self.runaway.lock().map_or(true, |r| r.contains(&key)) {
            return Err(stopped());
        }
        let (tx, rx) = mpsc::channel();
        let job = Job {
            env: self.env.clone(),
            source,
            ctx: ctx.clone(),
            max: self.limits.max_output,
            reply: tx,
        };
        if let Err(e) = RENDERER.with(|r| r.borrow_mut().run(job)) {
            return Err(Failed::Other(format!("cannot start rendering: {e}")));
        }
        match rx.recv_timeout(deadline) {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(mut r) = self.runaway.lock() {
                    r.insert(key);
                }
                // Its thread is busy until minijinja gives up; the next
                // rendering gets a new one.
                RENDERER.with(|r| r.borrow_mut().abandon());
                Err(stopped())
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(Failed::Other("the template engine failed".into()))
            }
        }
    }

    /// Renders the template `name` with `ctx`.
    pub fn render(&self, name: &str, ctx: &Value) -> Result<String, DeliverError> {
        self.guarded(Source::Named(name.to_string()), ctx)
            .map_err(|f| f.named(name))
    }

    /// The plain-text part: `NAME.txt` beside an HTML template when it
    /// exists, else the HTML's text.
    pub fn render_text(&self, name: &str, html: &str, ctx: &Value) -> Result<String, DeliverError> {
        if let Some(stem) = name.strip_suffix(".html")
            && self.dir.join(format!("{stem}.txt")).is_file()
        {
            return self.render(&format!("{stem}.txt"), ctx);
        }
        Ok(html_to_text(html))
    }

    /// Renders a one-line template (a subject).
    pub fn render_line(
        &self,
        what: &str,
        source: &str,
        ctx: &Value,
    ) -> Result<String, DeliverError> {
        self.guarded(Source::Inline(source.to_string()), ctx)
            .map_err(|f| f.named(what))
            .map(|s| s.replace(['\r', '\n'], " ").trim().to_string())
    }
}

/// Rewrites every `href="http(s)://…"` of an HTML body (except `keep`,
/// the unsubscribe link) through `wrap`, after adding the UTM parameters
/// the URL does not already carry.
pub fn track_links(
    html: &str,
    utm: &[(&str, &str)],
    keep: &str,
    wrap: impl Fn(&str) -> String,
) -> String {
    let mut out = String::with_capacity(html.len() + 256);
    let mut rest = html;
    while let Some(i) = rest.find("href=\"") {
        let start = i + 6;
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('"') else {
            rest = &rest[start..];
            break;
        };
        let raw = &rest[start..start + len];
        // Attribute values are HTML-escaped (minijinja writes / as &#x2f;).
        let url = unescape_attr(raw);
        if (url.starts_with("http://") || url.starts_with("https://")) && url != keep {
            let (base, fragment) = match url.split_once('#') {
                Some((b, f)) => (b.to_string(), format!("#{f}")),
                None => (url.clone(), String::new()),
            };
            let mut with = base;
            for (k, v) in utm {
                if !with.contains(&format!("{k}=")) {
                    with.push(if with.contains('?') { '&' } else { '?' });
                    with.push_str(&format!("{k}={}", percent(v)));
                }
            }
            with.push_str(&fragment);
            out.push_str(&wrap(&with).replace('&', "&amp;"));
        } else {
            out.push_str(raw);
        }
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    out
}

/// An attribute value with its character references decoded (numeric,
/// and amp, quot, apos, lt, gt).
pub fn unescape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(end) = tail.find(';').filter(|&e| e <= 10) else {
            out.push('&');
            rest = &tail[1..];
            continue;
        };
        let name = &tail[1..end];
        let decoded = match name {
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "lt" => Some('<'),
            "gt" => Some('>'),
            n if n.starts_with("#x") || n.starts_with("#X") => u32::from_str_radix(&n[2..], 16)
                .ok()
                .and_then(char::from_u32),
            n if n.starts_with('#') => n[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[end + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Percent-encodes all but unreserved characters.
pub fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// minijinja's message with its line, when it has one.
fn detailed(e: &minijinja::Error) -> String {
    match e.line() {
        Some(line) => format!("line {line}: {e}"),
        None => e.to_string(),
    }
}

/// The readable text of an HTML body: tags dropped (paragraph and line
/// breaks kept), the common entities decoded, blank runs collapsed.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    let mut skip_until: Option<&str> = None;
    while let Some(lt) = rest.find('<') {
        if skip_until.is_none() {
            out.push_str(&rest[..lt]);
        }
        let Some(gt) = rest[lt..].find('>') else {
            rest = "";
            break;
        };
        let tag = rest[lt + 1..lt + gt].trim().to_ascii_lowercase();
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        match skip_until {
            Some(end) if tag.starts_with('/') && name == end => skip_until = None,
            Some(_) => {}
            None if (name == "style" || name == "script" || name == "head")
                && !tag.starts_with('/') =>
            {
                skip_until = Some(match name.as_str() {
                    "style" => "style",
                    "script" => "script",
                    _ => "head",
                });
            }
            None if matches!(
                name.as_str(),
                "p" | "div" | "h1" | "h2" | "h3" | "li" | "tr"
            ) && tag.starts_with('/') =>
            {
                out.push_str("\n\n");
            }
            None if name == "br" => out.push('\n'),
            None => {}
        }
        rest = &rest[lt + gt + 1..];
    }
    if skip_until.is_none() {
        out.push_str(rest);
    }
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&");
    let mut text = String::with_capacity(decoded.len());
    let mut blank = 0;
    for line in decoded
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
    {
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !text.is_empty() {
            text.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        text.push_str(&line);
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn renders_with_escaping_and_reports_lines() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(
            dir.path().join("templates/a.html"),
            "<p>Hi {{ traits.first_name | default('there') }},</p>\n<p>you are {{ profile.segment }}.</p>",
        )
        .unwrap();
        std::fs::write(dir.path().join("templates/bad.html"), "<p>\n{{ oops(</p>").unwrap();
        let t = Templates::new(dir.path());
        let ctx = serde_json::json!({"traits": {"first_name": "<Ann>"}, "profile": {"segment": "At Risk"}});
        let html = t.render("templates/a.html", &ctx).unwrap();
        assert!(html.contains("Hi &lt;Ann&gt;,"), "{html}");
        assert_eq!(
            t.render_text("templates/a.html", &html, &ctx).unwrap(),
            "Hi <Ann>,\n\nyou are At Risk."
        );
        let e = t
            .render("templates/bad.html", &ctx)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("template templates/bad.html: line 2"), "{e}");
        let e = t.check("templates/missing.html").unwrap_err().to_string();
        assert!(e.contains("templates/missing.html"), "{e}");
        assert_eq!(
            t.render_line("subject", "For {{ traits.first_name }}\n!", &ctx)
                .unwrap(),
            "For <Ann> !"
        );
    }

    /// Templates that would loop for minutes or fill the memory stop with
    /// an error: the one fuzzing found (an empty sequence repeated 2.6·10^9
    /// times, lazily: no instruction per repeat, so only the deadline
    /// stops it), a loop of loops (fuel), a huge output (the cap).
    #[test]
    fn runaway_templates_are_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let t = Templates::with_limits(
            dir.path(),
            Limits {
                deadline: Duration::from_millis(300),
                ..Limits::default()
            },
        );
        let ctx = serde_json::json!({});
        let started = std::time::Instant::now();
        let slow = "{{()*51615*0000050700*0.**0.0}}";
        let e = t
            .render_line("subject", slow, &ctx)
            .unwrap_err()
            .to_string();
        assert!(e.contains("longer than 0.3 s"), "{e}");
        // Not tried again: at once, the same error.
        let e2 = t
            .render_line("subject", slow, &ctx)
            .unwrap_err()
            .to_string();
        assert_eq!(e, e2);
        assert!(started.elapsed() < Duration::from_secs(2));
        let loops =
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
        let e = t
            .render_line("subject", loops, &ctx)
            .unwrap_err()
            .to_string();
        assert!(e.contains("out of fuel"), "{e}");
        let big = "{{ 'x' * 1000000 }}{{ 'x' * 1000000 }}{{ 'x' * 1000000 }}";
        let e = t.render_line("subject", big, &ctx).unwrap_err().to_string();
        assert!(e.contains("larger than 2097152 bytes"), "{e}");
        // An ordinary template is unaffected.
        assert_eq!(t.render_line("subject", "{{ 6 * 7 }}", &ctx).unwrap(), "42");
        // Checking a moment's templates catches it before any send.
        std::fs::write(dir.path().join("slow.html"), slow).unwrap();
        std::fs::write(
            dir.path().join("data.html"),
            "{{ traits.first_name | upper }}",
        )
        .unwrap();
        let t = Templates::with_limits(dir.path(), t.limits);
        let e = t.check("slow.html").unwrap_err().to_string();
        assert!(
            e.starts_with(
                "template slow.html: a trial rendering with no customer data: rendering took longer"
            ),
            "{e}"
        );
        t.check("data.html").unwrap();
    }

    #[test]
    fn links_get_utm_and_go_through_the_redirect() {
        assert_eq!(
            unescape_attr("https:&#x2f;&#47;a&amp;b&bogus;&"),
            "https://a&b&bogus;&"
        );
        let html = r#"<a href="https:&#x2f;&#x2f;shop.example/p?id=1&amp;x=2#top">p</a> <a href="https://u.example/u/t">unsub</a> <a href="mailto:a@b.c">m</a>"#;
        let out = track_links(
            html,
            &[("utm_source", "lifecycle"), ("utm_campaign", "win back")],
            "https://u.example/u/t",
            |u| format!("https://l.example/c/{}", percent(u)),
        );
        assert!(out.starts_with(r#"<a href="https://l.example/c/https%3A%2F%2Fshop.example%2Fp%3Fid%3D1%26x%3D2%26utm_source%3Dlifecycle%26utm_campaign%3Dwin%2520back%23top">"#), "{out}");
        assert!(out.contains(r#"href="https://u.example/u/t""#), "{out}");
        assert!(out.contains(r#"href="mailto:a@b.c""#), "{out}");
    }

    #[test]
    fn text_of_html() {
        assert_eq!(
            html_to_text(
                "<html><head><style>p{}</style></head><body><h1>A &amp; B</h1><p>x<br>y</p></body></html>"
            ),
            "A & B\n\nx\ny"
        );
    }
}
