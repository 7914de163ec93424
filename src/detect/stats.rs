//! Tail probabilities and false-discovery-rate control. Pure, NaN-free: every function
//! returns a probability in [0, 1] for any input.

use statrs::function::beta::checked_beta_reg;
use statrs::function::gamma::{checked_gamma_lr, checked_gamma_ur};

/// Below this the negative binomial is numerically a Poisson.
const PHI_POISSON: f64 = 1e-9;

fn prob(p: Result<f64, impl std::fmt::Debug>) -> f64 {
    match p {
        Ok(v) if v.is_finite() => v.clamp(0.0, 1.0),
        _ => 1.0,
    }
}

/// P(X >= x) for X ~ NB(mean `mu`, overdispersion `phi`): `var = mu + phi mu^2`.
pub fn nb_upper(x: f64, mu: f64, phi: f64) -> f64 {
    let k = x.ceil();
    if k.is_nan() || k <= 0.0 || !mu.is_finite() {
        return 1.0;
    }
    let mu = mu.max(1e-6);
    if phi < PHI_POISSON {
        // P(X >= k) = P(k, mu), the regularized lower incomplete gamma function.
        return prob(checked_gamma_lr(k, mu));
    }
    let r = 1.0 / phi;
    prob(checked_beta_reg(k, r, mu / (r + mu)))
}

/// P(X <= x) for X ~ NB(mean `mu`, overdispersion `phi`).
pub fn nb_lower(x: f64, mu: f64, phi: f64) -> f64 {
    let k = x.floor();
    if k.is_nan() || k < 0.0 || !mu.is_finite() {
        return if k < 0.0 { 0.0 } else { 1.0 };
    }
    let mu = mu.max(1e-6);
    if phi < PHI_POISSON {
        return prob(checked_gamma_ur(k + 1.0, mu));
    }
    let r = 1.0 / phi;
    prob(checked_beta_reg(r, k + 1.0, r / (r + mu)))
}

/// P(T >= t) for Student's t with `df` degrees of freedom.
pub fn t_upper(t: f64, df: f64) -> f64 {
    if t.is_nan() {
        return 1.0;
    }
    if t.is_infinite() {
        return if t > 0.0 { 0.0 } else { 1.0 };
    }
    let half = 0.5 * prob(checked_beta_reg(df / 2.0, 0.5, df / (df + t * t)));
    if t >= 0.0 { half } else { 1.0 - half }
}

/// Benjamini-Hochberg adjusted p-values, in place. `scratch` avoids an allocation per call.
/// Entries that are `None` are not tested and stay `None`.
pub fn bh_adjust(p: &mut [Option<f64>], scratch: &mut Vec<(f64, usize)>) {
    scratch.clear();
    scratch.extend(p.iter().enumerate().filter_map(|(i, v)| v.map(|v| (v, i))));
    let m = scratch.len() as f64;
    scratch.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut running = 1.0f64;
    for (rank, &(v, i)) in scratch.iter().enumerate().rev() {
        running = running.min(v * m / (rank as f64 + 1.0));
        p[i] = Some(running.clamp(0.0, 1.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_tail_matches_known_values() {
        // P(X >= 12 | Poisson(2)) ~= 1.1e-6
        let p = nb_upper(12.0, 2.0, 0.0);
        assert!(p > 5e-7 && p < 2e-6, "{p}");
        assert_eq!(nb_upper(0.0, 2.0, 0.0), 1.0);
        let lo = nb_lower(0.0, 10.0, 0.0);
        assert!((lo - (-10.0f64).exp()).abs() < 1e-9);
    }

    #[test]
    fn overdispersion_widens_the_tail() {
        assert!(nb_upper(12.0, 2.0, 0.5) > nb_upper(12.0, 2.0, 0.0));
        // 2000 -> 2100 with 5% wobble is unremarkable.
        assert!(nb_upper(2100.0, 2000.0, 0.0025) > 0.05);
    }

    #[test]
    fn tails_are_probabilities_for_any_input() {
        for &x in &[f64::NAN, -1.0, 0.0, 1e12, f64::INFINITY] {
            for &mu in &[f64::NAN, 0.0, 1e-12, 5.0, 1e9] {
                for &phi in &[0.0, 1e-3, 10.0] {
                    let u = nb_upper(x, mu, phi);
                    let l = nb_lower(x, mu, phi);
                    assert!((0.0..=1.0).contains(&u) && (0.0..=1.0).contains(&l));
                }
            }
            assert!((0.0..=1.0).contains(&t_upper(x, 4.0)));
        }
    }

    #[test]
    fn bh_matches_hand_computation() {
        let mut p = vec![Some(0.01), None, Some(0.04), Some(0.03)];
        bh_adjust(&mut p, &mut Vec::new());
        assert_eq!(p[1], None);
        assert!((p[0].unwrap_or(1.0) - 0.03).abs() < 1e-12);
        assert!((p[3].unwrap_or(1.0) - 0.04).abs() < 1e-12);
        assert!((p[2].unwrap_or(1.0) - 0.04).abs() < 1e-12);
    }
}
