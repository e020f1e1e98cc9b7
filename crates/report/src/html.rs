//! `report.html`: one self-contained page, no scripts and no network, with
//! the segment table and charts drawn as inline SVG.

use std::fmt::Write as _;

use lifecycle_rfm::{Analysis, Kind, Phase, SegmentTable};

use crate::money;
use crate::summary::Summary;
use crate::table::thousands;

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A colour per segment: a hue per phase, a lightness per segment in it.
pub fn segment_colours(table: &SegmentTable) -> Vec<String> {
    let hue = |p: Phase| match p {
        Phase::Acquisition => 210.0,
        Phase::Retention => 175.0,
        Phase::IncreasedValue => 95.0,
        Phase::Veneration => 45.0,
        Phase::Reactivation => 5.0,
    };
    let segs = table.segments();
    segs.iter()
        .enumerate()
        .map(|(i, s)| {
            let same: Vec<usize> = (0..segs.len())
                .filter(|&j| segs[j].phase == s.phase)
                .collect();
            let k = same.iter().position(|&j| j == i).unwrap_or(0);
            let light = 38.0 + 22.0 * k as f64 / (same.len().max(2) - 1) as f64;
            format!("hsl({:.0},62%,{light:.0}%)", hue(s.phase))
        })
        .collect()
}

fn bar_chart(summary: &Summary, colours: &[String]) -> String {
    let row_h = 26.0;
    let label_w = 170.0;
    // Each panel: bars up to `bar_w`, then room for the value label.
    let panel_w = 340.0;
    let bar_w = 220.0;
    let gap = 30.0;
    let top = 30.0;
    let n = summary.segments.len();
    let height = top + row_h * n as f64 + 10.0;
    let width = label_w + 2.0 * panel_w + gap;
    let max_c = summary
        .segments
        .iter()
        .map(|s| s.customers)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let max_r = summary
        .segments
        .iter()
        .map(|s| s.revenue.max(0.0))
        .fold(0.0, f64::max)
        .max(1.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="Customers and revenue per segment">"#
    );
    let _ = write!(
        svg,
        r#"<text x="{label_w}" y="16" class="h">Customers</text>"#
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="16" class="h">Revenue</text>"#,
        label_w + panel_w + gap
    );
    for (i, s) in summary.segments.iter().enumerate() {
        let y = top + row_h * i as f64;
        let c = &colours[i];
        let wc = bar_w * s.customers as f64 / max_c;
        let wr = bar_w * s.revenue.max(0.0) / max_r;
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            label_w - 8.0,
            y + 16.0,
            esc(&s.name)
        );
        let _ = write!(
            svg,
            r#"<rect x="{label_w}" y="{}" width="{wc:.1}" height="{}" fill="{c}"><title>{}: {} customers</title></rect>"#,
            y + 4.0,
            row_h - 8.0,
            esc(&s.name),
            s.customers
        );
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" class="v">{} ({:.1}%)</text>"#,
            label_w + wc + 4.0,
            y + 16.0,
            thousands(s.customers as f64),
            s.customer_share * 100.0
        );
        let x2 = label_w + panel_w + gap;
        let _ = write!(
            svg,
            r#"<rect x="{x2}" y="{}" width="{wr:.1}" height="{}" fill="{c}"><title>{}: revenue {}</title></rect>"#,
            y + 4.0,
            row_h - 8.0,
            esc(&s.name),
            money(s.revenue)
        );
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" class="v">{} ({:.1}%)</text>"#,
            x2 + wr + 4.0,
            y + 16.0,
            thousands(s.revenue),
            s.revenue_share * 100.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The R×F grid: each cell coloured by the segment most of its customers
/// are in (by the rules when the cell is empty), with the customer count.
fn rf_grid(analysis: &Analysis, table: &SegmentTable, colours: &[String]) -> String {
    let n_seg = table.segments().len();
    let mut counts = vec![vec![0usize; n_seg]; 25];
    for c in analysis.customers() {
        if let Some(s) = c.scores {
            let cell = usize::from(5 - s.r) * 5 + usize::from(s.f - 1);
            counts[cell][c.segment] += 1;
        }
    }
    let rule_grid = table.rf_grid(Kind::Repeat, 3);
    let cell = 96.0;
    let left = 60.0;
    let top = 20.0;
    let width = left + cell * 5.0 + 20.0;
    let height = top + cell * 5.0 + 50.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="R by F grid coloured by segment">"#
    );
    for (row, rule_row) in rule_grid.iter().enumerate() {
        for (col, &rule_segment) in rule_row.iter().enumerate() {
            let k = row * 5 + col;
            let total: usize = counts[k].iter().sum();
            let (seg, opacity) = if total > 0 {
                let best = (0..n_seg)
                    .max_by_key(|&s| (counts[k][s], std::cmp::Reverse(s)))
                    .unwrap_or(0);
                (best, 1.0)
            } else {
                (rule_segment, 0.35)
            };
            let x = left + cell * col as f64;
            let y = top + cell * row as f64;
            let name = &table.segments()[seg].name;
            let _ = write!(
                svg,
                r#"<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{}" fill-opacity="{opacity}" stroke="white" stroke-width="2"><title>R={} F={}: {total} customers, mostly {}</title></rect>"#,
                colours[seg],
                5 - row,
                col + 1,
                esc(name)
            );
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="middle" class="n">{}</text>"#,
                x + cell / 2.0,
                y + cell / 2.0,
                thousands(total as f64)
            );
            // Up to two lines of the segment name.
            let mut lines: Vec<String> = vec![String::new()];
            for word in name.split_whitespace() {
                let last = lines.last_mut().expect("starts with one line");
                if !last.is_empty() && last.len() + word.len() > 13 {
                    lines.push(word.to_string());
                } else {
                    if !last.is_empty() {
                        last.push(' ');
                    }
                    last.push_str(word);
                }
            }
            for (k, line) in lines.iter().take(2).enumerate() {
                let _ = write!(
                    svg,
                    r#"<text x="{}" y="{}" text-anchor="middle" class="s">{}</text>"#,
                    x + cell / 2.0,
                    y + cell / 2.0 + 18.0 + 12.0 * k as f64,
                    esc(line)
                );
            }
        }
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">R {}</text>"#,
            left - 8.0,
            top + cell * row as f64 + cell / 2.0 + 4.0,
            5 - row
        );
    }
    for col in 0..5 {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">F {}</text>"#,
            left + cell * col as f64 + cell / 2.0,
            top + cell * 5.0 + 18.0,
            col + 1
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle" class="v">Frequency score → (recency score ↑)</text>"#,
        left + cell * 2.5,
        top + cell * 5.0 + 40.0
    );
    svg.push_str("</svg>");
    svg
}

pub fn render_html(analysis: &Analysis, table: &SegmentTable, s: &Summary) -> String {
    let colours = segment_colours(table);
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Lifecycle report — {as_of}</title>
<style>
body{{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1280px;padding:0 1rem;color:#1d232b}}
td.c{{min-width:13rem}} .wrap{{overflow-x:auto}} td.g{{min-width:9rem}} td.s{{min-width:10rem}}
h1{{font-size:1.6rem;margin-bottom:.2rem}} h2{{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #dde3ea;padding-bottom:.3rem}}
.meta{{color:#5b6570}} table{{border-collapse:collapse;width:100%;margin:.5rem 0}}
th,td{{padding:.35rem .5rem;border-bottom:1px solid #e6eaef;text-align:left;vertical-align:top}}
td.n,th.n{{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}}
.sw{{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;margin-right:.4rem;vertical-align:-1px}}
.cards{{display:flex;gap:1rem;flex-wrap:wrap}} .card{{background:#f5f7fa;border-radius:8px;padding:.7rem 1rem;min-width:9rem}}
.card b{{display:block;font-size:1.3rem}} svg text{{font-size:12px;fill:#1d232b}} svg text.h{{font-weight:600}}
svg text.v{{fill:#5b6570}} svg text.n{{font-size:18px;font-weight:600}} svg text.s{{font-size:10px}}
ul{{margin:.2rem 0;padding-left:1.1rem}} .note{{background:#fff8e1;padding:.5rem .8rem;border-radius:6px}}
</style></head><body>
<h1>Lifecycle report</h1>
<p class="meta">As of {as_of} ({as_of_source}), time zone {tz}. Input: {path} ({format}).</p>
"#,
        as_of = esc(&s.as_of),
        as_of_source = esc(&s.as_of_source),
        tz = esc(&s.timezone),
        path = esc(&s.input.path),
        format = esc(&s.input.format),
    );
    let _ = write!(
        h,
        r#"<div class="cards"><div class="card">Customers<b>{}</b></div><div class="card">Orders<b>{}</b></div><div class="card">Revenue<b>{}</b></div><div class="card">Top 20% share of revenue<b>{}</b></div></div>"#,
        thousands(s.customers as f64),
        thousands(s.orders as f64),
        thousands(s.revenue),
        s.pareto_top20_revenue_share
            .map_or("-".into(), |p| format!("{:.1}%", p * 100.0))
    );
    for n in &s.notes {
        let _ = write!(h, r#"<p class="note">{}</p>"#, esc(n));
    }
    h.push_str("<h2>Segments</h2><div class=wrap tabindex=0 role=region aria-label=\"Segments (scrolls sideways)\"><table><thead><tr><th>Segment</th><th>Phase</th><th class=n>Customers</th><th class=n>Share</th><th class=n>Revenue</th><th class=n>Rev. share</th><th class=n title='Mean days since the last order'>Recency (days)</th><th class=n title='Mean number of orders'>Orders</th><th class=n title='Mean net spend'>Spend</th><th>Goal</th><th>Suggested campaigns</th></tr></thead><tbody>");
    let opt = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |x| format!("{x:.d$}"));
    for (i, g) in s.segments.iter().enumerate() {
        let _ = write!(
            h,
            r#"<tr><td class=s><span class="sw" style="background:{}"></span>{}<br><small class="meta">{}</small></td><td>{}</td><td class=n>{}</td><td class=n>{:.1}%</td><td class=n>{}</td><td class=n>{:.1}%</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=g>{}</td><td class=c><ul>{}</ul></td></tr>"#,
            colours[i],
            esc(&g.name),
            esc(&g.description),
            esc(&g.phase),
            thousands(g.customers as f64),
            g.customer_share * 100.0,
            thousands(g.revenue),
            g.revenue_share * 100.0,
            opt(g.mean_days_since_last_order, 0),
            opt(g.mean_orders, 2),
            opt(g.mean_spend, 2),
            esc(&g.goal),
            g.campaigns
                .iter()
                .map(|c| format!("<li>{}</li>", esc(c)))
                .collect::<String>()
        );
    }
    h.push_str("</tbody></table></div>");
    h.push_str("<h2>Customers and revenue per segment</h2>");
    h.push_str(&bar_chart(s, &colours));
    h.push_str("<h2>R × F grid</h2><p class=meta>Each cell holds the buyers with that recency and frequency score, coloured by the segment most of them are in (cells without customers show the rule for a middle M score, faded).</p>");
    h.push_str(&rf_grid(analysis, table, &colours));
    if let Some(clv) = &s.clv {
        clv_section(&mut h, clv, &colours, table);
    }
    if let Some(t) = &s.tripwires {
        tripwires_section(&mut h, t);
    }
    if let Some(k) = &s.kpis {
        kpis_section(&mut h, k);
    }
    h.push_str("<h2>Phases</h2><table><thead><tr><th>Phase</th><th>Segments</th><th class=n>Customers</th><th class=n>Revenue</th></tr></thead><tbody>");
    for p in &s.phases {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
            esc(&p.name),
            esc(&p.segments.join(", ")),
            p.customers,
            money(p.revenue)
        );
    }
    h.push_str("</tbody></table>");
    let _ = write!(
        h,
        "<h2>Score boundaries</h2><p class=meta>{} ({}).</p>",
        esc(&s.scoring.method),
        esc(&s.scoring.rule)
    );
    h.push_str("<table><thead><tr><th>Score</th><th class=n>Days since last order</th><th class=n>Orders</th><th class=n>Spend</th></tr></thead><tbody>");
    let range = |b: &crate::summary::Band, d: usize| match (b.min, b.max) {
        (Some(lo), Some(hi)) if lo == hi => format!("{lo:.d$} ({})", b.customers),
        (Some(lo), Some(hi)) => format!("{lo:.d$}–{hi:.d$} ({})", b.customers),
        _ => "— (0)".into(),
    };
    for i in 0..5 {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
            s.scoring.orders[i].score,
            range(&s.scoring.recency_days[i], 0),
            range(&s.scoring.orders[i], 0),
            range(&s.scoring.spend[i], 2)
        );
    }
    h.push_str("</tbody></table>");
    let r = &s.rows;
    let _ = write!(
        h,
        "<h2>Input</h2><p class=meta>{} rows read, {} used, {} rejected, {} after the analysis date, {} without customer, {} excluded by status, {} line-item continuations. Columns: {}. Dates: {}.</p>",
        r.read,
        r.used,
        r.rejected,
        r.after_as_of,
        r.without_customer,
        r.excluded_by_status,
        r.line_item_continuations,
        esc(&s
            .input
            .columns
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join(", ")),
        esc(&s.input.date_format)
    );
    let _ = writeln!(
        h,
        "<p class=meta>Lifecycle {}</p></body></html>",
        esc(&s.lifecycle_version)
    );
    h
}

/// Black or white, whichever reads at WCAG AA (4.5:1) on `rgb` laid at
/// `alpha` over white: the relative luminance decides (white reads below
/// 0.183, black above 0.175, so one of them always does).
fn text_on(rgb: [f64; 3], alpha: f64) -> &'static str {
    let lin = |c: f64| {
        let v = (255.0 - alpha * (255.0 - c)) / 255.0;
        if v <= 0.04045 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    let l = 0.2126 * lin(rgb[0]) + 0.7152 * lin(rgb[1]) + 0.0722 * lin(rgb[2]);
    if l > 0.179 { "#000" } else { "#fff" }
}

/// The KPI and insight sections of the report (what `analyze --kpis`
/// writes into `summary.json`'s `kpis`) as an HTML fragment, for pages
/// that draw them elsewhere (the dashboard).
pub fn kpis_html(k: &serde_json::Value) -> String {
    let mut h = String::new();
    kpis_section(&mut h, k);
    h
}

/// `analyze --kpis`: headline figures, the cohort heatmap (share of each
/// acquisition cohort active in each month since) and retention curves.
fn kpis_section(h: &mut String, k: &serde_json::Value) {
    let pct = |v: &serde_json::Value| {
        v.as_f64()
            .map_or_else(|| "–".to_string(), |x| format!("{:.1}%", 100.0 * x))
    };
    let _ = write!(
        h,
        "<h2>Retention and concentration</h2><p class=meta>Repeat-purchase rate {}; last {}'s retention {} (churn {}); the top 20% of customers bring {} of revenue (Gini {:.3}); median {} days between orders (p90 {}). Every cell is in cohorts.csv, every month in retention.csv (quarters and years in retention_quarter.csv and retention_year.csv).</p>",
        pct(&k["repeat_rate"]),
        esc(k["retention_period"].as_str().unwrap_or("month")),
        pct(&k["retention_rate_last_period"]),
        pct(&k["churn_rate_last_period"]),
        pct(&k["pareto_top20_share"]),
        k["gini"].as_f64().unwrap_or(0.0),
        k["days_between_orders"]["p50"],
        k["days_between_orders"]["p90"],
    );
    if let Some(points) = k["lorenz"].as_array().filter(|p| p.len() > 1) {
        let (w, ht, pad) = (320.0, 320.0, 40.0);
        let side = w - 2.0 * pad;
        let xy = |p: &serde_json::Value| {
            let x = p[0].as_f64().unwrap_or(0.0);
            let y = p[1].as_f64().unwrap_or(0.0);
            format!("{:.1},{:.1}", pad + side * x, ht - pad - side * y)
        };
        let line: Vec<String> = points.iter().map(xy).collect();
        let _ = write!(
            h,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {ht}\" width=\"{w}\" height=\"{ht}\" font-family=\"sans-serif\" font-size=\"12\"><rect x=\"{pad}\" y=\"{pad}\" width=\"{side}\" height=\"{side}\" fill=\"none\" stroke=\"#bbb\"/><line x1=\"{pad}\" y1=\"{b}\" x2=\"{r}\" y2=\"{pad}\" stroke=\"#bbb\" stroke-dasharray=\"4 3\"/><polyline fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"2\" points=\"{}\"/><text x=\"{pad}\" y=\"{t}\">share of customers (smallest first)</text><text x=\"4\" y=\"24\">Lorenz curve: share of revenue (Gini {:.3})</text></svg>",
            line.join(" "),
            k["gini"].as_f64().unwrap_or(0.0),
            b = ht - pad,
            r = w - pad,
            t = ht - 12.0,
        );
    }
    if let Some(bins) = k["days_between_orders"]["histogram"]
        .as_array()
        .filter(|b| !b.is_empty())
    {
        let bars: Vec<(String, f64)> = bins
            .iter()
            .map(|b| {
                let label = match (b[0].as_u64(), b[1].as_u64()) {
                    (Some(a), Some(z)) => format!("{a}–{}", z.saturating_sub(1)),
                    (Some(a), None) => format!("{a}+"),
                    _ => String::new(),
                };
                (label, b[2].as_f64().unwrap_or(0.0))
            })
            .collect();
        h.push_str("<h3>Days between orders</h3>");
        h.push_str(&bars_svg(
            &bars,
            "days from one purchase day to the next",
            "gaps",
        ));
    }
    let cohorts = k["cohorts"].as_array().cloned().unwrap_or_default();
    let width = cohorts
        .iter()
        .map(|c| c["retention"].as_array().map_or(0, Vec::len))
        .max()
        .unwrap_or(0);
    h.push_str("<div style=\"overflow-x:auto\" tabindex=\"0\" role=\"region\" aria-label=\"Cohort retention (scrolls sideways)\"><table class=heat><thead><tr><th>Cohort</th><th class=n>Customers</th>");
    for m in 0..width {
        let _ = write!(h, "<th class=n>{m}</th>");
    }
    h.push_str("</tr></thead><tbody>");
    for c in &cohorts {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=n>{}</td>",
            esc(c["cohort"].as_str().unwrap_or("")),
            c["size"]
        );
        for v in c["retention"].as_array().into_iter().flatten() {
            let x = v.as_f64().unwrap_or(0.0);
            // Months after the first: shade by retention (0–50% spans the scale).
            let shade = (x.min(0.5) / 0.5 * 0.85).clamp(0.0, 0.85);
            let _ = write!(
                h,
                "<td class=n style=\"background:rgba(31,95,168,{shade:.2});color:{}\">{:.1}%</td>",
                text_on([31.0, 95.0, 168.0], shade),
                100.0 * x
            );
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table></div>");
    // Retention curves: months since acquisition on x, share active on y.
    let (w, ht, left, bottom) = (720.0, 280.0, 50.0, 40.0);
    let ymax = cohorts
        .iter()
        .flat_map(|c| {
            c["retention"]
                .as_array()
                .into_iter()
                .flatten()
                .skip(1)
                .filter_map(|v| v.as_f64())
        })
        .fold(0.0f64, f64::max)
        .max(0.01);
    // The right 130 px hold the cohorts' legend.
    let x = |m: usize| left + (w - left - 140.0) * m as f64 / (width.max(2) - 1) as f64;
    let y = |v: f64| ht - bottom - (ht - bottom - 20.0) * (v / ymax).min(1.0);
    let _ = write!(
        h,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {ht}\" width=\"{w}\" height=\"{ht}\" font-family=\"sans-serif\" font-size=\"12\"><line x1=\"{left}\" y1=\"{yb}\" x2=\"{xr}\" y2=\"{yb}\" stroke=\"#888\"/><text x=\"{left}\" y=\"{ty}\">months since acquisition (from 1)</text><text x=\"4\" y=\"14\">share active (max {:.1}%)</text>",
        100.0 * ymax,
        yb = ht - bottom,
        xr = w - 20.0,
        ty = ht - 8.0,
    );
    let colours = [
        "#1f5fa8", "#d2691e", "#2e7d32", "#8e24aa", "#c62828", "#00838f",
    ];
    for (i, c) in cohorts.iter().enumerate() {
        let points: Vec<String> = c["retention"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .skip(1)
            .filter_map(|(m, v)| v.as_f64().map(|v| format!("{:.1},{:.1}", x(m), y(v))))
            .collect();
        let colour = colours[i % colours.len()];
        let _ = write!(
            h,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"><title>{}</title></polyline>",
            points.join(" "),
            esc(c["cohort"].as_str().unwrap_or(""))
        );
        if i < 12 {
            let _ = write!(
                h,
                "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{colour}\">{}</text>",
                w - 110.0,
                30.0 + 14.0 * i as f64,
                esc(c["cohort"].as_str().unwrap_or(""))
            );
        }
    }
    h.push_str("</svg>");
    if let Some(heads) = k["anomalies"]["headlines"]
        .as_array()
        .filter(|a| !a.is_empty())
    {
        h.push_str("<h3>What distinguishes the segments</h3><p class=meta>Attribute values over- or under-represented in a segment against the other customers (Benjamini–Hochberg adjusted; all in anomalies.csv).</p><ul>");
        for x in heads {
            let ci = x["ci"].as_array().map_or_else(String::new, |c| {
                format!(
                    " (95% CI {:.1}–{:.1})",
                    c.first().and_then(|v| v.as_f64()).unwrap_or(0.0),
                    c.get(1).and_then(|v| v.as_f64()).unwrap_or(0.0)
                )
            });
            let _ = write!(
                h,
                "<li>{}{}</li>",
                esc(x["text"].as_str().unwrap_or("")),
                esc(&ci)
            );
        }
        h.push_str("</ul>");
    }
    if let Some(groups) = k["stickiness"]["groups"]
        .as_array()
        .filter(|g| !g.is_empty())
    {
        let _ = write!(
            h,
            "<h3>New-customer stickiness</h3><p class=meta>Share of new customers who ordered again within {} days (95% CI), against {} overall; first-year value per customer. Flagged: differs from the other customers after Benjamini–Hochberg.</p><table><thead><tr><th>Attribute</th><th>Value</th><th class=n>New customers</th><th class=n>Ordered again</th><th class=n>First-year value</th><th></th></tr></thead><tbody>",
            k["stickiness"]["window_days"],
            pct(&k["stickiness"]["overall"]["rate"]),
        );
        // Flagged groups first, then the largest; at most 40 rows.
        let mut shown: Vec<&serde_json::Value> = groups.iter().collect();
        shown.sort_by_key(|g| {
            (
                g["differs"] != true,
                std::cmp::Reverse(g["new_customers"].as_u64().unwrap_or(0)),
            )
        });
        shown.truncate(40);
        for g in shown {
            let ci = &g["ci"];
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{} ({}–{})</td><td class=n>{}</td><td>{}</td></tr>",
                esc(g["attribute"].as_str().unwrap_or("")),
                esc(g["value"].as_str().unwrap_or("")),
                g["new_customers"],
                pct(&g["rate"]),
                pct(&ci[0]),
                pct(&ci[1]),
                g["first_year_value"]
                    .as_f64()
                    .map_or_else(|| "–".to_string(), |v| format!("{v:.2}")),
                if g["differs"] == true { "flagged" } else { "" },
            );
        }
        h.push_str("</tbody></table>");
    }
    insights_sections(h, k);
}

/// Value against cost, what customers buy next, the ideal customer profile
/// and experience: the parts of `analyze --kpis` that need attributes,
/// order lines, spend or survey answers.
fn insights_sections(h: &mut String, k: &serde_json::Value) {
    let pct = |v: &serde_json::Value| {
        v.as_f64()
            .map_or_else(|| "–".to_string(), |x| format!("{:.1}%", 100.0 * x))
    };
    let num = |v: &serde_json::Value, d: usize| {
        v.as_f64()
            .map_or_else(|| "–".to_string(), |x| format!("{x:.d$}"))
    };
    let s = |v: &serde_json::Value| esc(v.as_str().unwrap_or(""));
    if let Some(groups) = k["ltv_cac"]["groups"].as_array().filter(|g| !g.is_empty()) {
        let payback = k["payback"]["groups"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let _ = write!(
            h,
            "<h3>Value against acquisition cost</h3><p class=meta>Predicted CLV on {} per customer against the acquisition cost; payback: months from acquisition until the margin earned per customer covers it (ltv_cac.csv, ltv_cac_cohorts.csv, payback.csv).</p><table><thead><tr><th>Channel</th><th class=n>Customers</th><th class=n>Mean CLV</th><th class=n>Mean CAC</th><th class=n>LTV:CAC</th><th class=n>Payback (months)</th></tr></thead><tbody>",
            esc(k["ltv_cac"]["margin_basis"].as_str().unwrap_or("margin"))
        );
        for g in groups {
            let ch = g["acquisition_channel"].as_str().unwrap_or("");
            let months = payback
                .iter()
                .find(|p| p["acquisition_channel"] == ch)
                .map_or_else(
                    || "–".to_string(),
                    |p| {
                        p["payback_months"]
                            .as_u64()
                            .map_or_else(|| "not yet".to_string(), |m| m.to_string())
                    },
                );
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
                esc(ch),
                g["customers"],
                num(&g["mean_clv"], 2),
                num(&g["mean_cac"], 2),
                num(&g["ltv_cac"], 2),
                esc(&months)
            );
        }
        h.push_str("</tbody></table>");
    }
    let lines = &k["lines"];
    if lines.is_object() {
        let _ = write!(
            h,
            "<h3>What customers buy</h3><p class=meta>{} order lines of {} products; margin {} of revenue; the top 20% of customers bring {} of the margin (Gini {}).</p>",
            lines["lines"],
            lines["products"],
            pct(&lines["margin_rate"]),
            pct(&lines["margin_pareto_top20_share"]),
            num(&lines["margin_gini"], 3),
        );
        let top = lines["affinities"]["top"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if top.is_empty() {
            h.push_str("<p>No product is bought after another more often than the buyers' own buying predicts.</p>");
        } else {
            let _ = write!(
                h,
                "<p>Bought next ({} of {} rules significant after Benjamini–Hochberg; all in affinities.csv; each customer's next best product in next_best.csv, {} customers):</p><ul>",
                lines["affinities"]["strong"],
                lines["affinities"]["tested"],
                lines["next_best"]["customers"],
            );
            for r in &top {
                let _ = write!(h, "<li>{}</li>", s(&r["text"]));
            }
            h.push_str("</ul>");
        }
    }
    let icp = &k["icp"];
    if icp.is_object() {
        let best: Vec<String> = icp["best_segments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(esc))
            .collect();
        let med = &icp["days_between_orders_median"];
        let _ = write!(
            h,
            "<h3>Ideal customer profile</h3><p class=meta>{} best customers ({}) against {} others: what they have more of (significant after Benjamini–Hochberg; everything in icp.csv). They order every {} days (median of their mean gaps) against {} for the others. {} lookalikes: the customers outside the best segments who match the profile best (lookalikes.csv{}).</p>",
            icp["best_customers"],
            best.join(", "),
            icp["other_customers"],
            num(&med["best"], 0),
            num(&med["rest"], 0),
            icp["lookalikes"],
            if icp["files"].as_array().is_some_and(|f| f.len() > 2) {
                ", and hashed for Meta and Google in lookalikes_meta.csv and lookalikes_google.csv"
            } else {
                ""
            },
        );
        let traits = icp["traits"].as_array().cloned().unwrap_or_default();
        let buys = icp["buys"].as_array().cloned().unwrap_or_default();
        if !traits.is_empty() || !buys.is_empty() {
            h.push_str("<table><thead><tr><th></th><th>Trait</th><th class=n>Best</th><th class=n>Others</th><th class=n>Index</th></tr></thead><tbody>");
            for t in &traits {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{} = {}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}×</td></tr>",
                    s(&t["section"]),
                    s(&t["dimension"]),
                    s(&t["value"]),
                    pct(&t["best_share"]),
                    pct(&t["rest_share"]),
                    num(&t["index"], 2)
                );
            }
            for b in &buys {
                let _ = write!(
                    h,
                    "<tr><td>what they buy</td><td>{} {}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}×</td></tr>",
                    s(&b["kind"]),
                    s(&b["value"]),
                    pct(&b["best_share"]),
                    pct(&b["rest_share"]),
                    num(&b["index"], 2)
                );
            }
            h.push_str("</tbody></table>");
        }
        if let Some(days) = icp["weekdays"].as_array().filter(|d| !d.is_empty()) {
            let groups: Vec<(String, f64, f64)> = days
                .iter()
                .map(|d| {
                    (
                        d["weekday"]
                            .as_str()
                            .unwrap_or("")
                            .chars()
                            .take(3)
                            .collect(),
                        100.0 * d["best_share"].as_f64().unwrap_or(0.0),
                        100.0 * d["rest_share"].as_f64().unwrap_or(0.0),
                    )
                })
                .collect();
            h.push_str("<h3>When they buy</h3>");
            h.push_str(&paired_bars_svg(
                &groups,
                "weekday",
                "% of order lines",
                ("best customers", "others"),
            ));
        }
    }
    if let Some(groups) = k["experience"]["groups"]
        .as_array()
        .filter(|g| !g.is_empty())
    {
        h.push_str("<h3>Experience by segment and phase</h3><p class=meta>NPS from the NPS question alone (promoters 9–10 minus detractors 0–6, 95% CI); CES 1–7 (lower is easier); review score 1–5; returns per item bought; support tickets resolved per ticket opened (experience.csv; free text with the segment in comments.csv).</p><table><thead><tr><th>Group</th><th class=n>Customers</th><th class=n>NPS answers</th><th class=n>NPS</th><th class=n>CES</th><th class=n>Review</th><th class=n>Returns</th><th class=n>Resolved</th></tr></thead><tbody>");
        let mut rows = Vec::new();
        for g in groups
            .iter()
            .filter(|g| g["customers"].as_u64().unwrap_or(0) > 0)
        {
            let ci = g["nps_ci"].as_array();
            let nps = g["nps"].as_f64().map_or_else(
                || "–".to_string(),
                |v| {
                    let c = ci.map_or((f64::NAN, f64::NAN), |c| {
                        (
                            c[0].as_f64().unwrap_or(f64::NAN),
                            c[1].as_f64().unwrap_or(f64::NAN),
                        )
                    });
                    format!("{v:.0} ({:.0} to {:.0})", c.0, c.1)
                },
            );
            let level = g["level"].as_str().unwrap_or("");
            let name = g["group"].as_str().unwrap_or("");
            let _ = write!(
                h,
                "<tr><td>{}{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
                if level == "segment" {
                    "&nbsp;&nbsp;"
                } else {
                    ""
                },
                esc(name),
                g["customers"],
                g["nps_answers"],
                esc(&nps),
                num(&g["ces"], 2),
                num(&g["review_score"], 2),
                pct(&g["return_rate"]),
                pct(&g["resolution_rate"]),
            );
            if level == "segment"
                && let (Some(v), Some(c)) = (g["nps"].as_f64(), ci)
            {
                rows.push(ForestRow {
                    label: name.to_string(),
                    estimate: v,
                    ci: (c[0].as_f64().unwrap_or(v), c[1].as_f64().unwrap_or(v)),
                    note: String::new(),
                });
            }
        }
        h.push_str("</tbody></table>");
        if !rows.is_empty() {
            h.push_str("<h3>NPS by segment (95% CI)</h3>");
            h.push_str(&forest_svg_with(&rows, &|v| format!("{v:+.0}")));
        }
    }
}

/// A bar chart of labelled counts.
pub fn bars_svg(bars: &[(String, f64)], x_label: &str, y_label: &str) -> String {
    let (w, ht, left, bottom) = (720.0, 260.0, 60.0, 50.0);
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9);
    let slot = (w - left - 20.0) / bars.len().max(1) as f64;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {ht}\" width=\"{w}\" height=\"{ht}\" font-family=\"sans-serif\" font-size=\"11\"><line x1=\"{left}\" y1=\"{yb}\" x2=\"{xr}\" y2=\"{yb}\" stroke=\"#888\"/><text x=\"{left}\" y=\"{ty}\">{}</text><text x=\"4\" y=\"14\">{} (max {max:.0})</text>",
        esc(x_label),
        esc(y_label),
        yb = ht - bottom,
        xr = w - 20.0,
        ty = ht - 8.0,
    );
    let every = (bars.len() / 12).max(1);
    for (i, (label, v)) in bars.iter().enumerate() {
        let bh = (ht - bottom - 24.0) * v / max;
        let x = left + slot * i as f64;
        let _ = write!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#1f5fa8\"><title>{}: {v:.0}</title></rect>",
            x + slot * 0.1,
            ht - bottom - bh,
            slot * 0.8,
            esc(label)
        );
        if i % every == 0 {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                x + slot / 2.0,
                ht - bottom + 14.0,
                esc(label)
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// The value model of `analyze --clv`: parameters, totals and a bar chart of
/// mean CLV per segment.
fn tripwires_section(h: &mut String, t: &serde_json::Value) {
    let _ = write!(
        h,
        "<h2>Tripwires</h2><p class=meta>Norms learned from {} {} (Kaplan-Meier, censored customers are not failures); each backtested on deadlines after a split, outcomes over the next 180 days. Every flagged customer is in tripwires.csv.</p><table><thead><tr><th>Norm</th><th class=n>At warning</th><th class=n>Tripped</th><th class=n>CLV at stake</th><th>Backtest: ordered again, kept vs tripped (95% CI of the difference)</th></tr></thead><tbody>",
        t["best_customers"].as_u64().unwrap_or(0),
        esc(t["best"].as_str().unwrap_or("")),
    );
    let flags = t["flags"].as_array().cloned().unwrap_or_default();
    let find = |name: &str| flags.iter().find(|f| f["tripwire"] == name).cloned();
    let mut bars = Vec::new();
    for n in t["norms"].as_array().cloned().unwrap_or_default() {
        let step = n["step"].as_str().unwrap_or("");
        let f = find(step);
        let num = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
        let b = &n["backtest"];
        let rate = |v: &serde_json::Value| v["value"].as_f64();
        let bt = match (
            rate(&b["repeat_rate_kept"]),
            rate(&b["repeat_rate_tripped"]),
        ) {
            (Some(k), Some(tr)) => {
                bars.push((
                    step.replace("order_", "").replace("_to_", "→"),
                    k * 100.0,
                    tr * 100.0,
                ));
                let d = &b["repeat_rate_difference"];
                format!(
                    "{:.1}% vs {:.1}% ({:+.1} to {:+.1} points)",
                    k * 100.0,
                    tr * 100.0,
                    d["low"].as_f64().unwrap_or(f64::NAN) * 100.0,
                    d["high"].as_f64().unwrap_or(f64::NAN) * 100.0
                )
            }
            _ => "not enough history".into(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td>{}</td></tr>",
            esc(n["statement"].as_str().unwrap_or("")),
            f.as_ref().map_or(0, |f| num(&f["warning"])),
            f.as_ref().map_or(0, |f| num(&f["tripped"])),
            crate::money(
                f.as_ref()
                    .and_then(|f| f["clv_at_stake"].as_f64())
                    .unwrap_or(0.0)
            ),
            esc(&bt)
        );
    }
    if let Some(r) = find("personal_rhythm") {
        let _ = write!(
            h,
            "<tr><td>Personal rhythm: repeat buyers the model expected to have bought again by now (80%)</td><td class=n>0</td><td class=n>{}</td><td class=n>{}</td><td></td></tr>",
            r["tripped"].as_u64().unwrap_or(0),
            crate::money(r["clv_at_stake"].as_f64().unwrap_or(0.0)),
        );
    }
    h.push_str("</tbody></table>");
    if !bars.is_empty() {
        h.push_str("<h3>Backtest: share who ordered again after the deadline</h3>");
        h.push_str(&paired_bars_svg(
            &bars,
            "norm (order k → k+1)",
            "% ordered again",
            ("kept the norm", "tripped"),
        ));
    }
}

fn clv_section(h: &mut String, clv: &serde_json::Value, colours: &[String], table: &SegmentTable) {
    let num = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let params = clv["params"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k} = {:.4}", num(v)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let _ = write!(
        h,
        "<h2>Customer value</h2><p class=meta>BG/NBD ({}; time in weeks){}; horizon {}, margin {}, annual discount rate {}. Total CLV {}; {} customers flagged for value decline.</p>",
        esc(&params),
        clv["spend_model"]["params"]
            .as_object()
            .map(|m| format!(
                " and Gamma-Gamma ({})",
                esc(&m
                    .iter()
                    .map(|(k, v)| format!("{k} = {:.3}", num(v)))
                    .collect::<Vec<_>>()
                    .join(", "))
            ))
            .unwrap_or_default(),
        esc(clv["horizon"].as_str().unwrap_or("")),
        num(&clv["margin"]),
        num(&clv["discount_rate"]),
        thousands(num(&clv["total_clv"])),
        clv["value_decline_flagged"].as_u64().unwrap_or(0)
    );
    let rows: Vec<(String, f64)> = clv["by_segment"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    (
                        r["segment"].as_str().unwrap_or("").to_string(),
                        num(&r["mean_clv"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    h.push_str("<p class=meta>Mean CLV per customer, by segment.</p>");
    let max = rows.iter().map(|r| r.1).fold(0.0, f64::max).max(1e-9);
    let (label_w, bar_w, row_h) = (170.0, 360.0, 24.0);
    let height = 10.0 + row_h * rows.len() as f64;
    let _ = write!(
        h,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 640 {height}" width="640" height="{height}" role="img" aria-label="Mean CLV per segment">"#
    );
    for (i, (name, mean)) in rows.iter().enumerate() {
        let y = 5.0 + row_h * i as f64;
        let colour = table
            .segments()
            .iter()
            .position(|s| &s.name == name)
            .and_then(|k| colours.get(k))
            .map_or("#888", String::as_str);
        let w = bar_w * mean / max;
        let _ = write!(
            h,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text><rect x="{label_w}" y="{}" width="{w:.1}" height="{}" fill="{colour}"/><text x="{:.1}" y="{}" class="v">{:.2}</text>"#,
            label_w - 8.0,
            y + 15.0,
            esc(name),
            y + 3.0,
            row_h - 6.0,
            label_w + w + 4.0,
            y + 15.0,
            mean
        );
    }
    h.push_str("</svg>");
    if let Some(points) = clv["tracking"].as_array() {
        let points: Vec<(usize, f64, f64)> = points
            .iter()
            .filter_map(|p| Some((p[0].as_u64()? as usize, p[1].as_f64()?, p[2].as_f64()?)))
            .collect();
        if !points.is_empty() {
            h.push_str("<h3>Model fit: tracking</h3><p class=meta>Cumulative repeat purchases per week since the first customer's first purchase: actual (solid) and what the fitted BG/NBD expects (dashed). Curves that part ways mean the model misses a trend or seasonality.</p>");
            h.push_str(&tracking_svg(&points, None));
        }
    }
    if let Some(bins) = clv["clv_histogram"].as_array() {
        histogram(h, bins);
    }
}

/// Customers per CLV band (the last band holds the top 1%).
fn histogram(h: &mut String, bins: &[serde_json::Value]) {
    let counts: Vec<(f64, f64, u64)> = bins
        .iter()
        .filter_map(|b| {
            Some((
                b["from"].as_f64()?,
                b["to"].as_f64()?,
                b["customers"].as_u64()?,
            ))
        })
        .collect();
    if counts.is_empty() {
        return;
    }
    let max = counts.iter().map(|c| c.2).max().unwrap_or(1).max(1) as f64;
    let (w, height, left, bottom) = (720.0, 240.0, 60.0, 40.0);
    let bar = (w - left - 20.0) / counts.len() as f64;
    h.push_str("<h3>CLV distribution</h3><p class=meta>Customers per CLV band (20 equal bands up to the 99th percentile; the last bar is the top 1%).</p>");
    let _ = write!(
        h,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {height}" width="{w}" height="{height}" font-family="sans-serif" font-size="11" role="img" aria-label="CLV distribution">"##
    );
    for (i, (from, _, n)) in counts.iter().enumerate() {
        let bh = (height - bottom - 20.0) * *n as f64 / max;
        let x = left + bar * i as f64;
        let _ = write!(
            h,
            r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{}"><title>{} customers</title></rect>"##,
            height - bottom - bh,
            (bar - 2.0).max(1.0),
            if i + 1 == counts.len() {
                "#d2691e"
            } else {
                "#1f5fa8"
            },
            n
        );
        if i % 5 == 0 {
            let _ = write!(
                h,
                r#"<text x="{x:.1}" y="{}">{}</text>"#,
                height - bottom + 14.0,
                esc(&money(*from))
            );
        }
    }
    let _ = write!(h, r#"<text x="4" y="20">{}</text></svg>"#, max as u64);
}

/// The tracking chart: weekly cumulative repeat purchases, actual (solid)
/// and predicted (dashed), as in Fader, Hardie & Lee (2005), Figure 2; a
/// dashed vertical line marks the calibration end when there is a holdout.
pub fn tracking_svg(points: &[(usize, f64, f64)], calibration_weeks: Option<usize>) -> String {
    let (w, h, left, bottom) = (720.0, 360.0, 60.0, 40.0);
    let max_y = points.iter().map(|p| p.1.max(p.2)).fold(1.0, f64::max);
    let n = points.len().max(1) as f64;
    let x = |i: usize| left + (w - left - 20.0) * i as f64 / n;
    let y = |v: f64| h - bottom - (h - bottom - 20.0) * v / max_y;
    let path = |f: &dyn Fn(&(usize, f64, f64)) -> f64| {
        points
            .iter()
            .enumerate()
            .map(|(k, p)| {
                format!(
                    "{}{:.1},{:.1}",
                    if k == 0 { "M" } else { "L" },
                    x(p.0),
                    y(f(p))
                )
            })
            .collect::<String>()
    };
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<line x1="{left}" y1="{yb}" x2="{xr}" y2="{yb}" stroke="#888"/><line x1="{left}" y1="20" x2="{left}" y2="{yb}" stroke="#888"/>
{marker}<path d="{actual}" fill="none" stroke="#1f5fa8" stroke-width="2"/><path d="{predicted}" fill="none" stroke="#d2691e" stroke-width="2" stroke-dasharray="6 3"/>
<text x="{left}" y="{yl}">week</text><text x="4" y="30">{max_y:.0}</text>
<text x="{lx}" y="40" fill="#1f5fa8">actual</text><text x="{lx}" y="56" fill="#d2691e">predicted</text>
</svg>
"##,
        yb = h - bottom,
        xr = w - 20.0,
        marker = calibration_weeks
            .map(|c| {
                let xc = x(c);
                format!(
                    r##"<line x1="{xc:.1}" y1="20" x2="{xc:.1}" y2="{}" stroke="#bbb" stroke-dasharray="4 3"/><text x="{xc:.1}" y="16" text-anchor="middle">calibration end</text>
"##,
                    h - bottom
                )
            })
            .unwrap_or_default(),
        actual = path(&|p| p.1),
        predicted = path(&|p| p.2),
        yl = h - 10.0,
        lx = left + 12.0,
    )
}

/// Paired bars per group, actual (solid blue) and expected (orange), e.g.
/// holdout purchases by calibration frequency (FHL 2005, Figure 4).
pub fn grouped_bars_svg(groups: &[(String, f64, f64)], x_label: &str, y_label: &str) -> String {
    paired_bars_svg(groups, x_label, y_label, ("actual", "expected"))
}

/// Paired bars per group with the two series' names.
pub fn paired_bars_svg(
    groups: &[(String, f64, f64)],
    x_label: &str,
    y_label: &str,
    names: (&str, &str),
) -> String {
    let (w, h, left, bottom) = (720.0, 320.0, 60.0, 50.0);
    let max = groups
        .iter()
        .map(|g| g.1.max(g.2))
        .fold(0.0, f64::max)
        .max(1e-9);
    let slot = (w - left - 20.0) / groups.len().max(1) as f64;
    let bar = slot * 0.38;
    // The top 60 px hold the title and the legend.
    let y = |v: f64| (h - bottom - 60.0) * v / max;
    let mut out = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<line x1="{left}" y1="{yb}" x2="{xr}" y2="{yb}" stroke="#888"/>
"##,
        yb = h - bottom,
        xr = w - 20.0
    );
    for (i, (label, actual, expected)) in groups.iter().enumerate() {
        let x0 = left + slot * i as f64 + slot * 0.1;
        let _ = write!(
            out,
            r##"<rect x="{x0:.1}" y="{:.1}" width="{bar:.1}" height="{:.1}" fill="#1f5fa8"><title>{a} {actual:.3}</title></rect><rect x="{:.1}" y="{:.1}" width="{bar:.1}" height="{:.1}" fill="#d2691e"><title>{b} {expected:.3}</title></rect><text x="{:.1}" y="{}" text-anchor="middle">{}</text>"##,
            h - bottom - y(*actual),
            y(*actual),
            x0 + bar,
            h - bottom - y(*expected),
            y(*expected),
            x0 + bar,
            h - bottom + 16.0,
            esc(label),
            a = esc(names.0),
            b = esc(names.1),
        );
    }
    let _ = write!(
        out,
        r##"<text x="{left}" y="{}">{}</text><text x="4" y="14">{} (max {max:.2})</text>
<text x="{}" y="30" fill="#1f5fa8">{}</text><text x="{}" y="46" fill="#d2691e">{}</text>
</svg>
"##,
        h - 10.0,
        esc(x_label),
        esc(y_label),
        w - 120.0,
        esc(names.0),
        w - 120.0,
        esc(names.1)
    );
    out
}

/// One row of a forest plot: a label, the estimate and its interval (all
/// relative lifts, fractions), and whether it is significant.
pub struct ForestRow {
    pub label: String,
    pub estimate: f64,
    pub ci: (f64, f64),
    pub note: String,
}

/// A forest plot of relative lifts with their intervals around 0 (green
/// when the interval is above 0, red below, grey across).
pub fn forest_svg(rows: &[ForestRow]) -> String {
    forest_svg_with(rows, &|v| format!("{:+.2}%", 100.0 * v))
}

/// [`forest_svg`] with the values written by `fmt` (the zero line, the
/// axis ends and each estimate).
pub fn forest_svg_with(rows: &[ForestRow], fmt: &dyn Fn(f64) -> String) -> String {
    let (w, row_h, left, right) = (760.0, 30.0, 220.0, 150.0);
    let h = 50.0 + row_h * rows.len() as f64;
    let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
    let lo = rows
        .iter()
        .map(|r| finite(r.ci.0).min(finite(r.estimate)))
        .fold(0.0f64, f64::min);
    let hi = rows
        .iter()
        .map(|r| finite(r.ci.1).max(finite(r.estimate)))
        .fold(0.0f64, f64::max);
    let pad = ((hi - lo) * 0.1).max(0.01);
    let (lo, hi) = (lo - pad, hi + pad);
    let x = |v: f64| left + (w - left - right) * (v.clamp(lo, hi) - lo) / (hi - lo);
    let mut out = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<line x1="{x0:.1}" y1="20" x2="{x0:.1}" y2="{yb:.1}" stroke="#888" stroke-dasharray="4 3"/>
<text x="{x0:.1}" y="14" text-anchor="middle" fill="#555">{zero}</text>
"##,
        x0 = x(0.0),
        zero = esc(&fmt(0.0).replace('+', "")),
        yb = h - 20.0
    );
    for (i, r) in rows.iter().enumerate() {
        let y = 35.0 + row_h * i as f64;
        let colour = if r.ci.0 > 0.0 {
            "#2e7d32"
        } else if r.ci.1 < 0.0 {
            "#c62828"
        } else {
            "#757575"
        };
        let _ = writeln!(
            out,
            r##"<text x="8" y="{ty:.1}">{label}</text><line x1="{a:.1}" y1="{y:.1}" x2="{b:.1}" y2="{y:.1}" stroke="{colour}" stroke-width="3"><title>{ci_lo} to {ci_hi}</title></line><circle cx="{e:.1}" cy="{y:.1}" r="5" fill="{colour}"/><text x="{tx:.1}" y="{ty:.1}">{est} {note}</text>"##,
            ty = y + 4.0,
            label = esc(&r.label),
            a = x(r.ci.0),
            b = x(r.ci.1),
            e = x(r.estimate),
            ci_lo = esc(&fmt(r.ci.0)),
            ci_hi = esc(&fmt(r.ci.1)),
            tx = w - right + 10.0,
            est = esc(&fmt(r.estimate)),
            note = esc(&r.note),
        );
    }
    let _ = write!(
        out,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>
</svg>
"##,
        x(lo),
        h - 4.0,
        esc(&fmt(lo)),
        x(hi),
        h - 4.0,
        esc(&fmt(hi))
    );
    out
}

/// A self-contained lift report page: a title, lines of context, the
/// forest plot and a table (already escaped HTML rows are not accepted:
/// every cell is text).
pub fn lift_html(
    title: &str,
    context: &[String],
    rows: &[ForestRow],
    table: &[Vec<String>],
) -> String {
    let mut out = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}}table{{border-collapse:collapse}}td,th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}}td:first-child,th:first-child{{text-align:left}}.warn{{background:#fdecea;border:1px solid #c62828;padding:8px}}</style></head><body><h1>{t}</h1>\n",
        t = esc(title)
    );
    for c in context {
        if let Some(w) = c.strip_prefix("!! ") {
            let _ = writeln!(out, "<p class=\"warn\">{}</p>", esc(w));
        } else {
            let _ = writeln!(out, "<p>{}</p>", esc(c));
        }
    }
    out.push_str(&forest_svg(rows));
    out.push_str("<table>\n");
    for (i, row) in table.iter().enumerate() {
        let tag = if i == 0 { "th" } else { "td" };
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<{tag}>{}</{tag}>", esc(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table></body></html>\n");
    out
}

#[cfg(test)]
mod contrast_tests {
    use super::text_on;

    /// WCAG contrast of black or white text on the heatmap's blue at every
    /// shade: never under 4.5.
    #[test]
    fn heatmap_text_reads_at_every_shade() {
        for i in 0..=100 {
            let a = 0.85 * f64::from(i) / 100.0;
            let lin = |c: f64| {
                let v = (255.0 - a * (255.0 - c)) / 255.0;
                if v <= 0.04045 {
                    v / 12.92
                } else {
                    ((v + 0.055) / 1.055).powf(2.4)
                }
            };
            let l = 0.2126 * lin(31.0) + 0.7152 * lin(95.0) + 0.0722 * lin(168.0);
            let ratio = match text_on([31.0, 95.0, 168.0], a) {
                "#000" => (l + 0.05) / 0.05,
                _ => 1.05 / (l + 0.05),
            };
            assert!(ratio >= 4.5, "shade {a}: {ratio}");
        }
    }
}
