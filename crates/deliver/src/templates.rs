//! Message templates: minijinja files in the moments folder (`template =
//! "templates/win-back.html"`), rendered with the customer's context.
//! HTML templates are auto-escaped; a `.txt` file of the same name, when
//! present, is the plain-text part, otherwise the text is taken from the
//! HTML.

use std::path::{Path, PathBuf};

use minijinja::Environment;
use serde_json::Value;

use crate::DeliverError;

/// The templates of one moments folder.
pub struct Templates {
    env: Environment<'static>,
    dir: PathBuf,
}

fn template_err(name: &str, e: impl std::fmt::Display) -> DeliverError {
    DeliverError::Template {
        name: name.to_string(),
        message: e.to_string(),
    }
}

impl Templates {
    /// Templates read from `dir` (on first use, then cached).
    pub fn new(dir: &Path) -> Templates {
        let mut env = Environment::new();
        env.set_loader(minijinja::path_loader(dir));
        Templates {
            env,
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the template exists and parses (for `moments check`).
    pub fn check(&self, name: &str) -> Result<(), DeliverError> {
        self.env
            .get_template(name)
            .map(|_| ())
            .map_err(|e| template_err(name, detailed(&e)))
    }

    /// Renders the template `name` with `ctx`.
    pub fn render(&self, name: &str, ctx: &Value) -> Result<String, DeliverError> {
        let t = self
            .env
            .get_template(name)
            .map_err(|e| template_err(name, detailed(&e)))?;
        t.render(ctx).map_err(|e| template_err(name, detailed(&e)))
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
        self.env
            .render_str(source, ctx)
            .map(|s| s.replace(['\r', '\n'], " ").trim().to_string())
            .map_err(|e| template_err(what, detailed(&e)))
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
