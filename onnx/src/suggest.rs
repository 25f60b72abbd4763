//! "Did you mean ...?" for names a user mistyped: method ids, parameters, layers.

/// The candidates closest to `name` (at most three, about equally close), best first; empty
/// when none is close.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut scored: Vec<(f64, &str)> = candidates
        .into_iter()
        .map(|c| (strsim::normalized_damerau_levenshtein(name, c), c))
        .filter(|(score, c)| *score >= 0.5 || c.contains(name) || name.contains(*c))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    // Only names about as close as the best: a shared `family.` prefix is not a likeness.
    let best = scored.first().map_or(0.0, |s| s.0);
    scored
        .into_iter()
        .take_while(|(score, _)| *score >= best - 0.1)
        .take(3)
        .map(|(_, c)| c)
        .collect()
}

/// ` Did you mean `a` or `b`?` or an empty string.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let near = nearest(name, candidates);
    if near.is_empty() {
        return String::new();
    }
    let quoted: Vec<String> = near.iter().map(|c| format!("`{c}`")).collect();
    format!(" Did you mean {}?", quoted.join(" or "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_ids_first() {
        let ids = [
            "captum.saliency",
            "captum.occlusion",
            "captum.integrated_gradients",
        ];
        assert_eq!(nearest("captum.salency", ids), vec!["captum.saliency"]);
        assert_eq!(
            nearest("integrated_gradients", ids),
            vec!["captum.integrated_gradients"]
        );
        assert!(nearest("zzz", ids).is_empty());
    }
}
