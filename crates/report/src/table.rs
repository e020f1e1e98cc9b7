//! The terminal table of `lifecycle analyze`.

use std::fmt::Write as _;

use crate::summary::Summary;

pub(crate) fn thousands(v: f64) -> String {
    let neg = v < 0.0;
    let s = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if neg { format!("-{out}") } else { out }
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

/// Renders the segment table, the phases and each segment's goal and
/// campaigns as plain text (no colour codes, so it pipes cleanly).
pub fn render_table(s: &Summary) -> String {
    let headers = [
        "Segment",
        "Phase",
        "Customers",
        "Share",
        "Revenue",
        "Rev. share",
        "Recency d",
        "Orders",
        "Spend",
        "Goal",
    ];
    let opt = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |x| format!("{x:.d$}"));
    let rows: Vec<[String; 10]> = s
        .segments
        .iter()
        .map(|g| {
            [
                g.name.clone(),
                g.phase.clone(),
                thousands(g.customers as f64),
                pct(g.customer_share),
                thousands(g.revenue),
                pct(g.revenue_share),
                opt(g.mean_days_since_last_order, 0),
                opt(g.mean_orders, 1),
                opt(g.mean_spend, 0),
                g.goal.clone(),
            ]
        })
        .collect();
    let total = [
        "Total".to_string(),
        String::new(),
        thousands(s.customers as f64),
        "100.0%".into(),
        thousands(s.revenue),
        "100.0%".into(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
    ];
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows.iter().chain(std::iter::once(&total)) {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let numeric = |i: usize| (2..=8).contains(&i);
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            let pad = w - c.chars().count();
            if numeric(i) {
                out.push_str(&" ".repeat(pad));
                out.push_str(c);
            } else if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(c);
                out.push_str(&" ".repeat(pad));
            }
        }
        out.push('\n');
        out
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Lifecycle segments as of {} ({} customers, {} orders, revenue {}{})\n",
        s.as_of,
        thousands(s.customers as f64),
        thousands(s.orders as f64),
        thousands(s.revenue),
        s.currency
            .as_ref()
            .map(|c| format!(" {c}"))
            .unwrap_or_default()
    );
    out.push_str(&line(&headers.map(String::from)));
    out.push_str(&line(
        &widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>(),
    ));
    for r in &rows {
        out.push_str(&line(r));
    }
    out.push_str(&line(
        &widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>(),
    ));
    out.push_str(&line(&total));
    out.push_str("\nRecency d, Orders, Spend: segment means of days since the last order, orders and net spend.\n");
    if let Some(p) = s.pareto_top20_revenue_share {
        let _ = writeln!(
            out,
            "Pareto: the top 20% of customers bring {} of revenue.",
            pct(p)
        );
    }
    out.push_str("\nSuggested campaigns\n");
    for g in &s.segments {
        let _ = writeln!(out, "  {:<22} {}", g.name, g.campaigns.join("; "));
    }
    for n in &s.notes {
        let _ = writeln!(out, "\nNote: {n}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1234.0), "1,234");
        assert_eq!(thousands(2_500_315.63), "2,500,316");
        assert_eq!(thousands(-1234567.0), "-1,234,567");
    }
}
