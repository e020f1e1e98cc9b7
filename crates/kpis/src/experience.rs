//! Experience KPIs of a group of customers: NPS (from the NPS question
//! alone: % promoters 9–10 minus % detractors 0–6, with a 95% interval),
//! CES (mean, 1–7), the mean review score (1–5), the return rate (items
//! returned per item bought) and the support resolution rate (tickets
//! resolved per ticket opened).

/// One experience signal of one customer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Signal {
    /// "How likely are you to recommend us?", 0–10.
    Nps(f64),
    /// Customer effort score, 1–7.
    Ces(f64),
    /// A product review, 1–5.
    Review(f64),
    /// Items returned.
    Return(f64),
    TicketOpened,
    TicketResolved,
}

/// Sums for one group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Experience {
    pub customers: u64,
    pub nps_answers: u64,
    pub promoters: u64,
    pub detractors: u64,
    pub ces_answers: u64,
    pub ces_sum: f64,
    pub reviews: u64,
    pub review_sum: f64,
    pub returned: f64,
    /// Items bought (the denominator of the return rate).
    pub bought: f64,
    pub tickets_opened: u64,
    pub tickets_resolved: u64,
}

/// NPS on the −100..100 scale with its normal-approximation 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nps {
    pub score: f64,
    pub ci: (f64, f64),
}

impl Experience {
    pub fn add(&mut self, s: Signal) {
        match s {
            Signal::Nps(v) => {
                self.nps_answers += 1;
                if v >= 9.0 {
                    self.promoters += 1;
                } else if v <= 6.0 {
                    self.detractors += 1;
                }
            }
            Signal::Ces(v) => {
                self.ces_answers += 1;
                self.ces_sum += v;
            }
            Signal::Review(v) => {
                self.reviews += 1;
                self.review_sum += v;
            }
            Signal::Return(n) => self.returned += n,
            Signal::TicketOpened => self.tickets_opened += 1,
            Signal::TicketResolved => self.tickets_resolved += 1,
        }
    }

    /// Adds another group's sums.
    pub fn merge(&mut self, o: &Experience) {
        self.customers += o.customers;
        self.nps_answers += o.nps_answers;
        self.promoters += o.promoters;
        self.detractors += o.detractors;
        self.ces_answers += o.ces_answers;
        self.ces_sum += o.ces_sum;
        self.reviews += o.reviews;
        self.review_sum += o.review_sum;
        self.returned += o.returned;
        self.bought += o.bought;
        self.tickets_opened += o.tickets_opened;
        self.tickets_resolved += o.tickets_resolved;
    }

    /// The variance of the promoter-minus-detractor share of one answer is
    /// `p₊ + p₋ − (p₊ − p₋)²`.
    pub fn nps(&self) -> Option<Nps> {
        if self.nps_answers == 0 {
            return None;
        }
        let n = self.nps_answers as f64;
        let (p, d) = (self.promoters as f64 / n, self.detractors as f64 / n);
        let score = p - d;
        let se = ((p + d - score * score).max(0.0) / n).sqrt();
        let z = 1.959_963_984_540_054;
        Some(Nps {
            score: 100.0 * score,
            ci: (
                100.0 * (score - z * se).max(-1.0),
                100.0 * (score + z * se).min(1.0),
            ),
        })
    }

    pub fn ces(&self) -> Option<f64> {
        (self.ces_answers > 0).then(|| self.ces_sum / self.ces_answers as f64)
    }

    pub fn review(&self) -> Option<f64> {
        (self.reviews > 0).then(|| self.review_sum / self.reviews as f64)
    }

    pub fn return_rate(&self) -> Option<f64> {
        (self.bought > 0.0).then(|| self.returned / self.bought)
    }

    pub fn resolution_rate(&self) -> Option<f64> {
        (self.tickets_opened > 0).then(|| self.tickets_resolved as f64 / self.tickets_opened as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_hand() {
        let mut e = Experience::default();
        // 10 answers: 5 promoters (9, 10), 2 passives (7, 8), 3 detractors.
        for v in [9.0, 10.0, 9.0, 10.0, 9.0, 7.0, 8.0, 0.0, 6.0, 3.0] {
            e.add(Signal::Nps(v));
        }
        e.add(Signal::Ces(2.0));
        e.add(Signal::Ces(5.0));
        e.add(Signal::Review(4.0));
        e.add(Signal::Return(1.0));
        e.bought = 4.0;
        e.add(Signal::TicketOpened);
        e.add(Signal::TicketOpened);
        e.add(Signal::TicketResolved);
        let n = e.nps().unwrap();
        assert!((n.score - 20.0).abs() < 1e-12);
        // var = 0.5 + 0.3 − 0.2² = 0.76; se = sqrt(0.076).
        let half = 1.959_963_984_540_054 * 0.076f64.sqrt() * 100.0;
        assert!((n.ci.0 - (20.0 - half)).abs() < 1e-9 && (n.ci.1 - (20.0 + half)).abs() < 1e-9);
        assert_eq!(e.ces(), Some(3.5));
        assert_eq!(e.review(), Some(4.0));
        assert_eq!(e.return_rate(), Some(0.25));
        assert_eq!(e.resolution_rate(), Some(0.5));
        let mut all = Experience::default();
        all.merge(&e);
        all.merge(&e);
        assert_eq!(all.nps().unwrap().score, 20.0);
        assert!(Experience::default().nps().is_none());
    }
}
