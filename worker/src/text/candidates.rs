//! Scored candidates for one field and the choice between them.
//!
//! Every finder proposes values with a score between 0 and 1 (how strong the label, how near
//! the value); the same value found again adds a little. The best total wins and its score,
//! capped below 1, becomes the field's confidence: only structured data earns 1.

/// Highest confidence a value read from text can have.
pub(crate) const MAX_TEXT_CONFIDENCE: f32 = 0.95;
/// What each further sighting of the same value adds to its score.
const REPEAT_BONUS: f32 = 0.1;

/// A proposed value and how much the finder trusts it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Candidate<T> {
    pub(crate) value: T,
    pub(crate) score: f32,
}

impl<T> Candidate<T> {
    pub(crate) fn new(value: T, score: f32) -> Candidate<T> {
        Candidate { value, score }
    }
}

/// Candidates with equal values merged: the best score of each plus [`REPEAT_BONUS`] per
/// further sighting, in order of first sighting.
pub(crate) fn merge<T: PartialEq>(candidates: Vec<Candidate<T>>) -> Vec<Candidate<T>> {
    let mut merged: Vec<(Candidate<T>, usize)> = Vec::new();
    for candidate in candidates {
        match merged.iter_mut().find(|(m, _)| m.value == candidate.value) {
            Some((m, seen)) => {
                m.score = m.score.max(candidate.score);
                *seen += 1;
            }
            None => merged.push((candidate, 1)),
        }
    }
    merged
        .into_iter()
        .map(|(mut m, seen)| {
            m.score += REPEAT_BONUS * (seen - 1).min(3) as f32;
            m
        })
        .collect()
}

/// The best of the merged candidates; the earliest wins a tie.
pub(crate) fn best<T: PartialEq>(candidates: Vec<Candidate<T>>) -> Option<Candidate<T>> {
    merge(candidates).into_iter().fold(None, |best, c| match best {
        Some(b) if b.score >= c.score => Some(b),
        _ => Some(c),
    })
}

/// A score as a confidence in `0..=MAX_TEXT_CONFIDENCE`.
pub(crate) fn confidence(score: f32) -> f32 {
    (score.clamp(0.0, MAX_TEXT_CONFIDENCE) * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_strengthen_a_value() {
        let chosen = best(vec![Candidate::new("a", 0.55), Candidate::new("b", 0.5), Candidate::new("b", 0.5)]);
        assert_eq!(chosen.map(|c| c.value), Some("b"));
        assert_eq!(best(Vec::<Candidate<u8>>::new()), None);
        assert_eq!(confidence(1.7), MAX_TEXT_CONFIDENCE);
    }
}
