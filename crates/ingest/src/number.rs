//! Amounts as exports write them: `12.30`, `-5`, `1,234.56`, `$19.99`, `1e3`.

/// Why a value is not an amount.
pub type NumberError = &'static str;

/// Parses an amount. Accepts an optional sign, an optional currency symbol
/// (`$ € £ ¥`), digits with optional `,` thousands separators in groups of
/// three, and a `.` decimal point. A lone `,` decimal (`12,30`) is rejected
/// rather than guessed.
pub fn parse_amount(s: &str) -> Result<f64, NumberError> {
    let t = s.trim();
    if t.is_empty() {
        return Err("is empty");
    }
    if let Some(v) = fast_decimal(t.as_bytes()) {
        return Ok(v);
    }
    let (neg, rest) = match t.as_bytes()[0] {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let rest = rest.trim_start_matches(['$', '€', '£', '¥']).trim_start();
    let cleaned: String;
    let body = if rest.contains(',') {
        let (int, frac) = match rest.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (rest, None),
        };
        let groups: Vec<&str> = int.split(',').collect();
        let grouped = groups.len() > 1
            && (1..=3).contains(&groups[0].len())
            && groups[1..].iter().all(|g| g.len() == 3)
            && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()));
        if !grouped {
            return Err("is not a number");
        }
        cleaned = match frac {
            Some(f) => format!("{}.{f}", groups.concat()),
            None => groups.concat(),
        };
        cleaned.as_str()
    } else {
        rest
    };
    if !body.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        || !body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return Err("is not a number");
    }
    let v: f64 = body.parse().map_err(|_| "is not a number")?;
    if !v.is_finite() || v.abs() > 1e15 {
        return Err("is out of range");
    }
    Ok(if neg { -v } else { v })
}

/// `-?digits(.digits{1,9})?` without allocation; `None` for anything else.
pub(crate) fn fast_decimal(b: &[u8]) -> Option<f64> {
    let (neg, b) = match b.first()? {
        b'-' => (true, &b[1..]),
        _ => (false, b),
    };
    // At most 15 digits, so that the integer is exact in an f64.
    if b.is_empty() || b.len() > 15 {
        return None;
    }
    let mut int: i64 = 0;
    let mut i = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        int = int * 10 + i64::from(b[i] - b'0');
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let mut scale = 1i64;
    if i < b.len() {
        if b[i] != b'.' || i + 1 == b.len() {
            return None;
        }
        i += 1;
        while i < b.len() {
            if !b[i].is_ascii_digit() {
                return None;
            }
            int = int * 10 + i64::from(b[i] - b'0');
            scale *= 10;
            i += 1;
        }
    }
    // Exact for |int| < 2^53; the division rounds correctly.
    let v = int as f64 / scale as f64;
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_table() {
        let cases: &[(&str, Option<f64>)] = &[
            ("12.30", Some(12.3)),
            ("0.00", Some(0.0)),
            ("-5", Some(-5.0)),
            ("  7.5 ", Some(7.5)),
            ("1,234.56", Some(1234.56)),
            ("$19.99", Some(19.99)),
            ("-$3.00", Some(-3.0)),
            ("1e3", Some(1000.0)),
            ("+4", Some(4.0)),
            ("12,3O", None),
            ("12,30", None),
            ("1,23,456", None),
            ("abc", None),
            ("", None),
            ("NaN", None),
            ("inf", None),
            ("1e400", None),
            ("5.", Some(5.0)),
            ("1.2.3", None),
            ("--5", None),
        ];
        for &(s, want) in cases {
            assert_eq!(parse_amount(s).ok(), want, "{s:?}");
        }
    }

    #[test]
    fn fast_path_matches_std() {
        for s in [
            "11.77",
            "1286.01",
            "0.1",
            "-0.07",
            "123456789.123456789",
            "99",
        ] {
            assert_eq!(parse_amount(s).unwrap(), s.parse::<f64>().unwrap(), "{s}");
        }
    }
}
