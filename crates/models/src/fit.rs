//! Maximum likelihood: BFGS (`argmin`, Moré-Thuente line search) on
//! log-parameters, analytic gradients, optional L2 penalty, and standard
//! errors from the observed information matrix.

use argmin::core::{CostFunction, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::neldermead::NelderMead;
use argmin::solver::quasinewton::BFGS;

use crate::ModelError;

/// Options of a fit.
#[derive(Debug, Clone, PartialEq)]
pub struct FitConfig {
    /// L2 penalty on the parameters, added to the negative mean
    /// log-likelihood as `penalizer × Σ θ²` (as `lifetimes`' `penalizer_coef`).
    pub penalizer: f64,
    pub max_iters: u64,
    /// Convergence: the largest gradient component of the mean objective in
    /// log-parameters must fall below this.
    pub gradient_tolerance: f64,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            penalizer: 0.0,
            max_iters: 1000,
            gradient_tolerance: 1e-6,
        }
    }
}

/// What a fit found and how.
#[derive(Debug, Clone, PartialEq)]
pub struct FitReport {
    /// Parameter names as in the paper.
    pub names: Vec<String>,
    pub params: Vec<f64>,
    /// From the inverse of the observed information (the Hessian of the
    /// negative log-likelihood at the estimate); `None` where it is not
    /// positive definite.
    pub standard_errors: Vec<Option<f64>>,
    pub covariance: Option<Vec<Vec<f64>>>,
    /// The (unpenalised) log-likelihood of the data at the estimate.
    pub log_likelihood: f64,
    /// Observations (sum of weights) and distinct rows after collapsing.
    pub n_observations: f64,
    pub n_rows: usize,
    pub iterations: u64,
    pub converged: bool,
    /// Largest gradient component of the mean objective, in log-parameters.
    pub gradient_norm: f64,
    pub aic: f64,
    pub bic: f64,
}

/// A model's weighted log-likelihood over its (collapsed) data.
pub(crate) trait Likelihood: Sync {
    const NAMES: &'static [&'static str];

    /// Σ wᵢ ℓᵢ(θ) and its gradient with respect to the natural parameters.
    fn log_likelihood(&self, theta: &[f64]) -> (f64, Vec<f64>);

    /// Σ wᵢ.
    fn total_weight(&self) -> f64;

    fn n_rows(&self) -> usize;

    fn initial(&self) -> Vec<f64> {
        vec![1.0; self.names().len()]
    }

    /// The parameters' names: `NAMES` unless the model has a variable
    /// number of parameters (covariate coefficients).
    fn names(&self) -> Vec<String> {
        Self::NAMES.iter().map(|n| (*n).to_string()).collect()
    }

    /// The first `n_positive()` parameters are positive and optimised on
    /// their logarithms; any after them are real (regression coefficients)
    /// and optimised as they are.
    fn n_positive(&self) -> usize {
        self.names().len()
    }
}

/// The distinct values of a column and each row's index into them.
pub(crate) fn distinct_values(values: impl Iterator<Item = f64>) -> (Vec<f64>, Vec<u32>) {
    let mut seen: crate::FastMap<u64, u32> = crate::FastMap::default();
    let mut distinct = Vec::new();
    let index = values
        .map(|v| {
            *seen.entry(v.to_bits()).or_insert_with(|| {
                distinct.push(v);
                (distinct.len() - 1) as u32
            })
        })
        .collect();
    (distinct, index)
}

/// The number of cores, asked once (the standard library reads cgroup
/// files under /proc on every call, which a per-customer likelihood would
/// pay millions of times).
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `f` of each item, on all cores for many items, in order.
pub(crate) fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if items.len() < 2_000 {
        return items.iter().map(f).collect();
    }
    let threads = cores();
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| {
                let f = &f;
                scope.spawn(move || c.iter().map(f).collect::<Vec<R>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Rows per partial sum of a likelihood.
const CHUNK: usize = 16_384;

/// Σ over rows of `f(first_index, chunk)`, on all cores for large data.
/// The rows are cut into fixed chunks whose partial sums are added in
/// order, so the result is the same on every run and any number of cores.
pub(crate) fn parallel_sum<T: Sync, const K: usize>(
    rows: &[T],
    f: impl Fn(usize, &[T]) -> (f64, [f64; K]) + Sync,
) -> (f64, [f64; K]) {
    let chunks: Vec<&[T]> = rows.chunks(CHUNK).collect();
    let threads = if chunks.len() <= 1 {
        1
    } else {
        cores().min(chunks.len())
    };
    let parts: Vec<(f64, [f64; K])> = if threads <= 1 {
        chunks
            .iter()
            .enumerate()
            .map(|(i, c)| f(i * CHUNK, c))
            .collect()
    } else {
        let per_thread = chunks.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .chunks(per_thread)
                .enumerate()
                .map(|(t, group)| {
                    let f = &f;
                    scope.spawn(move || {
                        group
                            .iter()
                            .enumerate()
                            .map(|(j, c)| f((t * per_thread + j) * CHUNK, c))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    };
    let mut total = (0.0, [0.0; K]);
    for (v, g) in parts {
        total.0 += v;
        for (t, gk) in total.1.iter_mut().zip(g) {
            *t += gk;
        }
    }
    total
}

/// The optimiser's view: minimise f(u) = −ℓ(e^u)/N + penalizer Σ e^{2u}.
struct Problem<'a, L> {
    model: &'a L,
    penalizer: f64,
    n: f64,
    /// How many leading parameters are on the log scale.
    positive: usize,
}

impl<L> Clone for Problem<'_, L> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<L> Copy for Problem<'_, L> {}

/// The objective outside where the likelihood can be evaluated: large but
/// finite, so that line searches' interpolation stays finite too.
const WALL: f64 = 1e10;

impl<L: Likelihood> Problem<'_, L> {
    /// The natural parameters of optimiser coordinates u: e^u (kept
    /// finite) for the positive ones, u for the real ones.
    fn theta_of(&self, u: &[f64]) -> Vec<f64> {
        u.iter()
            .enumerate()
            .map(|(i, &v)| {
                if i < self.positive {
                    v.clamp(-40.0, 40.0).exp()
                } else {
                    v
                }
            })
            .collect()
    }

    fn value_and_gradient(&self, u: &[f64]) -> (f64, Vec<f64>) {
        let theta = self.theta_of(u);
        let (ll, grad) = self.model.log_likelihood(&theta);
        let penalty: f64 = theta.iter().map(|t| t * t).sum::<f64>() * self.penalizer;
        let value = -ll / self.n + penalty;
        let g = theta
            .iter()
            .zip(&grad)
            .enumerate()
            .map(|(i, (&t, &d))| {
                let chain = if i < self.positive { t } else { 1.0 };
                (-d / self.n + 2.0 * self.penalizer * t) * chain
            })
            .collect();
        if value.is_finite() {
            (value, g)
        } else {
            // Outside where the likelihood can be evaluated: a wall the line
            // search backs away from.
            (WALL, vec![0.0; u.len()])
        }
    }
}

impl<L: Likelihood> Problem<'_, L> {
    fn gradient_norm(&self, u: &[f64]) -> f64 {
        self.value_and_gradient(u)
            .1
            .iter()
            .fold(0.0f64, |m, g| m.max(g.abs()))
    }
}

fn bfgs<L: Likelihood>(
    problem: &Problem<'_, L>,
    start: Vec<f64>,
    config: &FitConfig,
) -> Result<(Vec<f64>, u64), ModelError> {
    let k = start.len();
    let identity: Vec<Vec<f64>> = (0..k)
        .map(|i| (0..k).map(|j| f64::from(u8::from(i == j))).collect())
        .collect();
    let solver = BFGS::new(MoreThuenteLineSearch::new())
        .with_tolerance_grad(config.gradient_tolerance * 1e-3)
        .map_err(|e| ModelError::Optimiser(e.to_string()))?
        .with_tolerance_cost(0.0)
        .map_err(|e| ModelError::Optimiser(e.to_string()))?;
    let result = Executor::new(*problem, solver)
        .configure(|state| {
            state
                .param(start)
                .inv_hessian(identity)
                .max_iters(config.max_iters)
        })
        .timer(false)
        .run()
        .map_err(|e| ModelError::Optimiser(e.to_string()))?;
    let state = result.state();
    let u = state
        .get_best_param()
        .cloned()
        .ok_or_else(|| ModelError::Optimiser("no estimate".into()))?;
    Ok((u, state.get_iter()))
}

/// A few safeguarded Newton steps (Hessian by forward differences of the
/// analytic gradient, step halving until the objective decreases): from
/// near the optimum they converge quadratically, which settles the flat
/// directions of these likelihoods far more tightly than BFGS stops.
fn newton_polish<L: Likelihood>(
    problem: &Problem<'_, L>,
    mut u: Vec<f64>,
    max_iters: u64,
) -> (Vec<f64>, u64) {
    let k = u.len();
    let mut iterations = 0;
    for _ in 0..max_iters {
        iterations += 1;
        let (f, g) = problem.value_and_gradient(&u);
        // Converged far below any tolerance a caller sets: more steps only
        // chase rounding (and each costs k gradients).
        if g.iter().all(|v| v.abs() < 1e-11) {
            break;
        }
        // Forward differences of the analytic gradient (k gradients, not
        // 2k): their O(step) error only slows the last digits, and the
        // reported covariance uses central differences.
        let mut h = vec![vec![0.0; k]; k];
        for j in 0..k {
            let step = 1e-6;
            let mut up = u.clone();
            up[j] += step;
            let gu = problem.value_and_gradient(&up).1;
            for i in 0..k {
                h[i][j] = (gu[i] - g[i]) / step;
            }
        }
        #[allow(clippy::needless_range_loop)] // symmetric index pairs
        for i in 0..k {
            for j in 0..i {
                let m = 0.5 * (h[i][j] + h[j][i]);
                h[i][j] = m;
                h[j][i] = m;
            }
        }
        let direction: Vec<f64> = match invert(&h) {
            Some(inv) => inv
                .iter()
                .map(|row| -row.iter().zip(&g).map(|(a, b)| a * b).sum::<f64>())
                .collect(),
            None => g.iter().map(|v| -v).collect(),
        };
        let descent = direction.iter().zip(&g).map(|(d, gi)| d * gi).sum::<f64>() < 0.0;
        let direction = if descent {
            direction
        } else {
            g.iter().map(|v| -v).collect()
        };
        let mut t = 1.0;
        let mut improved = None;
        while t > 1e-12 {
            let trial: Vec<f64> = u.iter().zip(&direction).map(|(a, d)| a + t * d).collect();
            // Beyond e^±35 the likelihoods lose their digits (a spuriously
            // low objective is no improvement).
            if trial.iter().all(|v| v.abs() < 35.0) && problem.value_and_gradient(&trial).0 < f {
                improved = Some(trial);
                break;
            }
            t *= 0.5;
        }
        match improved {
            Some(next) => {
                let gain = f - problem.value_and_gradient(&next).0;
                u = next;
                if gain < 1e-15 * f.abs().max(1.0) {
                    break;
                }
            }
            None => break,
        }
    }
    (u, iterations)
}

fn nelder_mead<L: Likelihood>(
    problem: &Problem<'_, L>,
    start: Vec<f64>,
    config: &FitConfig,
) -> Result<(Vec<f64>, u64), ModelError> {
    let mut simplex = vec![start.clone()];
    for i in 0..start.len() {
        let mut v = start.clone();
        v[i] += 0.5;
        simplex.push(v);
    }
    let solver = NelderMead::new(simplex)
        .with_sd_tolerance(1e-12)
        .map_err(|e| ModelError::Optimiser(e.to_string()))?;
    let result = Executor::new(*problem, solver)
        .configure(|state| state.max_iters(config.max_iters * 20))
        .timer(false)
        .run()
        .map_err(|e| ModelError::Optimiser(e.to_string()))?;
    let state = result.state();
    let u = state
        .get_best_param()
        .cloned()
        .ok_or_else(|| ModelError::Optimiser("no estimate".into()))?;
    Ok((u, state.get_iter()))
}

impl<L: Likelihood> CostFunction for Problem<'_, L> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, u: &Self::Param) -> Result<f64, argmin::core::Error> {
        Ok(self.value_and_gradient(u).0)
    }
}

impl<L: Likelihood> Gradient for Problem<'_, L> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, u: &Self::Param) -> Result<Vec<f64>, argmin::core::Error> {
        Ok(self.value_and_gradient(u).1)
    }
}

/// Maximises the likelihood of `model`; deterministic (fixed start, no
/// randomness).
pub(crate) fn maximize<L: Likelihood>(
    model: &L,
    config: &FitConfig,
) -> Result<FitReport, ModelError> {
    let names = model.names();
    let k = names.len();
    let n = model.total_weight();
    if n.is_nan() || n <= 0.0 {
        return Err(ModelError::NotIdentified("no observations".into()));
    }
    let positive = model.n_positive().min(k);
    let problem = Problem {
        model,
        penalizer: config.penalizer,
        n,
        positive,
    };
    let start: Vec<f64> = model
        .initial()
        .iter()
        .enumerate()
        .map(|(i, t)| if i < positive { t.ln() } else { *t })
        .collect();
    // Safeguarded Newton steps from the fixed start (Hessian by forward
    // differences of the analytic gradient, in log-parameters, halving the
    // step until the objective decreases): with the data-scaled start they
    // converge in a handful of iterations. Where they stall (an indefinite
    // Hessian far from the optimum), BFGS with a Moré-Thuente line search
    // takes over, and Nelder-Mead, which needs no gradient, is the last
    // resort. All of them are deterministic.
    // (At an unevaluable point the objective is the WALL with a zero
    // gradient: that is not convergence.)
    let converged = |u: &[f64]| {
        let (value, g) = problem.value_and_gradient(u);
        value < WALL && g.iter().fold(0.0f64, |m, v| m.max(v.abs())) <= config.gradient_tolerance
    };
    let (u0, it0) = newton_polish(&problem, start.clone(), 100);
    let (u, iterations) = if converged(&u0) {
        (u0, it0)
    } else {
        let from = if problem.value_and_gradient(&u0).0 < problem.value_and_gradient(&start).0 {
            u0
        } else {
            start.clone()
        };
        match bfgs(&problem, from.clone(), config) {
            Ok((u1, it1)) if converged(&u1) => (u1, it0 + it1),
            other => {
                let (u1, it1) = match other {
                    Ok((u1, it1))
                        if problem.value_and_gradient(&u1).0
                            < problem.value_and_gradient(&from).0 =>
                    {
                        (u1, it1)
                    }
                    Ok((_, it1)) => (from, it1),
                    Err(_) => (from, 0),
                };
                let (u2, it2) = nelder_mead(&problem, u1, config)?;
                let (u3, it3) = newton_polish(&problem, u2, 200);
                (u3, it0 + it1 + it2 + it3)
            }
        }
    };
    let (u, polish) = newton_polish(&problem, u, 50);
    let iterations = iterations + polish;
    let gradient_norm = problem.gradient_norm(&u);
    let params = problem.theta_of(&u);
    let (log_likelihood, _) = model.log_likelihood(&params);
    if !log_likelihood.is_finite() {
        return Err(ModelError::Numerical(
            "the log-likelihood is not finite at the estimate".into(),
        ));
    }
    let converged = gradient_norm <= config.gradient_tolerance;
    if !converged {
        return Err(ModelError::NoConvergence {
            iterations,
            gradient_norm,
        });
    }
    let covariance = observed_information(model, &params, positive).and_then(|h| invert(&h));
    let standard_errors = match &covariance {
        Some(c) => (0..k)
            .map(|i| (c[i][i] > 0.0).then(|| c[i][i].sqrt()))
            .collect(),
        None => vec![None; k],
    };
    let kf = k as f64;
    Ok(FitReport {
        names,
        params,
        standard_errors,
        covariance,
        log_likelihood,
        n_observations: n,
        n_rows: model.n_rows(),
        iterations,
        converged,
        gradient_norm,
        aic: 2.0 * kf - 2.0 * log_likelihood,
        bic: kf * n.ln() - 2.0 * log_likelihood,
    })
}

/// The Hessian of −ℓ in the natural parameters, by central differences of
/// the analytic gradient.
fn observed_information<L: Likelihood>(
    model: &L,
    theta: &[f64],
    positive: usize,
) -> Option<Vec<Vec<f64>>> {
    let k = theta.len();
    let mut h = vec![vec![0.0; k]; k];
    for j in 0..k {
        // Relative steps; at least 1e-5 for real parameters (coefficients
        // near 0).
        let floor = if j < positive { 1e-8 } else { 1.0 };
        let step = 1e-5 * theta[j].abs().max(floor);
        let mut up = theta.to_vec();
        let mut down = theta.to_vec();
        up[j] += step;
        down[j] -= step;
        let (_, g_up) = model.log_likelihood(&up);
        let (_, g_down) = model.log_likelihood(&down);
        for i in 0..k {
            h[i][j] = -(g_up[i] - g_down[i]) / (2.0 * step);
        }
    }
    // Symmetrise.
    let transposed: Vec<Vec<f64>> = (0..k).map(|i| (0..k).map(|j| h[j][i]).collect()).collect();
    for (row, trow) in h.iter_mut().zip(&transposed) {
        for (v, t) in row.iter_mut().zip(trow) {
            *v = 0.5 * (*v + t);
        }
    }
    h.iter().flatten().all(|v| v.is_finite()).then_some(h)
}

/// Gauss-Jordan inversion with partial pivoting (small matrices only).
pub(crate) fn invert(m: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let k = m.len();
    let mut a: Vec<Vec<f64>> = m
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let mut r = row.clone();
            r.extend((0..k).map(|j| f64::from(u8::from(i == j))));
            r
        })
        .collect();
    for col in 0..k {
        let pivot = (col..k).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        if a[pivot][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, pivot);
        let p = a[col][col];
        for v in a[col].iter_mut() {
            *v /= p;
        }
        let pivot_row = a[col].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != col {
                let f = row[col];
                if f != 0.0 {
                    for (v, pv) in row.iter_mut().zip(&pivot_row) {
                        *v -= f * pv;
                    }
                }
            }
        }
    }
    Some(a.into_iter().map(|r| r[k..].to_vec()).collect())
}

/// Asserts that a likelihood's analytic gradient matches central finite
/// differences at `theta`.
#[cfg(test)]
pub(crate) fn assert_gradient<L: Likelihood>(model: &L, theta: &[f64]) {
    let (_, g) = model.log_likelihood(theta);
    for j in 0..theta.len() {
        let h = 1e-6 * theta[j];
        let (mut up, mut down) = (theta.to_vec(), theta.to_vec());
        up[j] += h;
        down[j] -= h;
        let fd = (model.log_likelihood(&up).0 - model.log_likelihood(&down).0) / (2.0 * h);
        assert!(
            (fd - g[j]).abs() <= 1e-6 * fd.abs().max(1.0),
            "parameter {j}: finite difference {fd}, analytic {}",
            g[j]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_of_a_small_matrix() {
        let m = vec![vec![4.0, 1.0], vec![2.0, 3.0]];
        let inv = invert(&m).unwrap();
        let want = [[0.3, -0.1], [-0.2, 0.4]];
        for i in 0..2 {
            for j in 0..2 {
                assert!((inv[i][j] - want[i][j]).abs() < 1e-12);
            }
        }
        assert!(invert(&[vec![1.0, 2.0], vec![2.0, 4.0]]).is_none());
    }
}
