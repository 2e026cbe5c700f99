//! Queueing maths: how many workers an M/M/n queue needs to meet a wait target (Erlang C).

/// The fewest workers with which at most `miss` of the jobs wait longer than `target_secs`,
/// for a load of `load` busy workers and jobs of `job_secs` on average (M/M/n, Erlang C):
/// P(wait > t) = C(n, load) × exp(-(n - load) × t / job_secs). Above `max` it answers
/// `max + 1`, so the caller sees the demand exceeds the maximum.
pub(crate) fn erlang_c_staffing(load: f64, job_secs: f64, target_secs: f64, miss: f64, max: usize) -> usize {
    if load.is_nan() || load <= 0.0 {
        return 0;
    }
    let job_secs = job_secs.max(1e-3);
    // Erlang B by recursion: B(0) = 1, B(n) = load B(n-1) / (n + load B(n-1)); C from B.
    let mut blocking = 1.0;
    for n in 1..=max {
        let n_f = n as f64;
        blocking = load * blocking / (n_f + load * blocking);
        if n_f <= load {
            continue;
        }
        let waiting = n_f * blocking / (n_f - load * (1.0 - blocking));
        if waiting * (-(n_f - load) * target_secs / job_secs).exp() <= miss {
            return n;
        }
    }
    max + 1
}

/// Whole workers for a load (rounding noise of 1e-9 does not add a worker).
pub(crate) fn workers(load: f64) -> usize {
    (load - 1e-9).ceil().max(0.0) as usize
}
