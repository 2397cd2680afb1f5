//! Display text typed by people (display names, device names, announcements, a failed
//! broadcast's reason): what is kept of it before it is stored or shown to others.

/// Control characters removed, whitespace folded, cut to `max` characters.
pub fn clean_text(s: &str, max: usize) -> String {
    let visible: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    visible.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::clean_text;

    #[test]
    fn control_characters_go_whitespace_folds_and_length_is_capped() {
        assert_eq!(clean_text("  Lab\tPC \u{7} 12\n", 64), "Lab PC 12");
        assert_eq!(clean_text(&"x".repeat(100), 5), "xxxxx");
        assert_eq!(clean_text("é😀ü", 2), "é😀");
        assert_eq!(clean_text("\u{0}\u{1b}", 10), "");
    }
}
