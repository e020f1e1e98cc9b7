//! Send-time policy: quiet hours in the customer's time zone (a message
//! due inside them is deferred to their end, never dropped) and frequency
//! caps across moments (at most N messages on a channel per D days).

use jiff::tz::TimeZone;
use lifecycle_moments::Channel;

/// A daily window, e.g. 21:00–08:00, in minutes after midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: u16,
    pub end: u16,
}

fn minutes(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl QuietHours {
    /// `"21:00-08:00"`.
    pub fn parse(s: &str) -> Result<QuietHours, String> {
        let bad = || format!("\"{s}\" is not a window like 21:00-08:00");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let (start, end) = (minutes(a).ok_or_else(bad)?, minutes(b).ok_or_else(bad)?);
        if start == end {
            return Err(format!("\"{s}\" starts and ends at the same time"));
        }
        Ok(QuietHours { start, end })
    }

    /// When a message due at `now_ms` may go out in time zone `tz`: `None`
    /// when now is outside the quiet hours, else the instant they end.
    pub fn deferred_until(&self, now_ms: i64, tz: &TimeZone) -> Option<i64> {
        let now = jiff::Timestamp::from_millisecond(now_ms)
            .ok()?
            .to_zoned(tz.clone());
        let m = now.hour() as u16 * 60 + now.minute() as u16;
        let inside = if self.start < self.end {
            m >= self.start && m < self.end
        } else {
            m >= self.start || m < self.end
        };
        if !inside {
            return None;
        }
        let mut date = now.date();
        if self.start > self.end && m >= self.start {
            date = date.tomorrow().ok()?;
        }
        let end = date
            .at((self.end / 60) as i8, (self.end % 60) as i8, 0, 0)
            .to_zoned(tz.clone())
            .ok()?;
        Some(end.timestamp().as_millisecond().max(now_ms + 1))
    }
}

/// At most `max` messages on `channel` per `days` days, across moments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cap {
    pub channel: Channel,
    pub max: u32,
    pub days: f64,
}

impl Cap {
    /// `"2 per 7 days"` on a channel.
    pub fn parse(channel: &str, s: &str) -> Result<Cap, String> {
        let channel = Channel::parse(channel).ok_or_else(|| {
            format!("\"{channel}\" is not a channel (email, sms, push, webhook, onsite, audience)")
        })?;
        let bad = || format!("\"{s}\" is not a cap like \"2 per 7 days\"");
        let words: Vec<&str> = s.split_whitespace().collect();
        match words.as_slice() {
            [n, "per", d, "days" | "day"] => {
                let max: u32 = n.parse().map_err(|_| bad())?;
                let days: f64 = d.parse().map_err(|_| bad())?;
                if !(days.is_finite() && days > 0.0) {
                    return Err(bad());
                }
                Ok(Cap { channel, max, days })
            }
            _ => Err(bad()),
        }
    }

    /// The start of the cap's window ending at `now_ms`.
    pub fn since_ms(&self, now_ms: i64) -> i64 {
        now_ms - (self.days * 86_400_000.0) as i64
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn quiet_hours_defer_to_their_end_in_the_customer_zone() {
        let q = QuietHours::parse("21:00-08:00").unwrap();
        let paris = TimeZone::get("Europe/Paris").unwrap();
        // 22:30 in Paris (21:30Z in winter): deferred to 08:00 Paris next day.
        assert_eq!(
            q.deferred_until(at("2026-01-10T21:30:00Z"), &paris),
            Some(at("2026-01-11T07:00:00Z"))
        );
        // 06:00 Paris: to 08:00 the same day.
        assert_eq!(
            q.deferred_until(at("2026-01-10T05:00:00Z"), &paris),
            Some(at("2026-01-10T07:00:00Z"))
        );
        // 12:00 Paris: now.
        assert_eq!(q.deferred_until(at("2026-01-10T11:00:00Z"), &paris), None);
        // A window within one day.
        let lunch = QuietHours::parse("12:00-13:30").unwrap();
        assert_eq!(
            lunch.deferred_until(at("2026-01-10T12:10:00Z"), &TimeZone::UTC),
            Some(at("2026-01-10T13:30:00Z"))
        );
        assert!(QuietHours::parse("25:00-08:00").is_err());
        assert!(QuietHours::parse("08:00-08:00").is_err());
        assert!(QuietHours::parse("8-9").is_err());
    }

    #[test]
    fn caps_parse() {
        let c = Cap::parse("email", "2 per 7 days").unwrap();
        assert_eq!((c.channel, c.max, c.days), (Channel::Email, 2, 7.0));
        assert_eq!(c.since_ms(7 * 86_400_000), 0);
        assert!(Cap::parse("fax", "2 per 7 days").is_err());
        assert!(Cap::parse("email", "2 a week").is_err());
    }
}
