//! Which PostgreSQL text search configuration a page is indexed with: the stemmer and stop words
//! of its language where the analysis stage detected one PostgreSQL knows, `simple` (lower-cased
//! words, no stemming) for the rest.

/// `simple`: the configuration of pages whose language is unknown or has no stemmer.
pub const UNKNOWN: &str = "simple";

/// Detected language (ISO 639-3, as whatlang names it) to the PostgreSQL configuration name.
const CONFIGS: [(&str, &str); 24] = [
    ("ara", "arabic"),
    ("cat", "catalan"),
    ("dan", "danish"),
    ("deu", "german"),
    ("ell", "greek"),
    ("eng", "english"),
    ("fin", "finnish"),
    ("fra", "french"),
    ("hin", "hindi"),
    ("hun", "hungarian"),
    ("hye", "armenian"),
    ("ind", "indonesian"),
    ("ita", "italian"),
    ("lit", "lithuanian"),
    ("nep", "nepali"),
    ("nld", "dutch"),
    ("nob", "norwegian"),
    ("por", "portuguese"),
    ("ron", "romanian"),
    ("rus", "russian"),
    ("spa", "spanish"),
    ("srp", "serbian"),
    ("swe", "swedish"),
    ("tur", "turkish"),
];

/// The configuration for a page of `language` (ISO 639-3), `simple` when there is none.
pub fn config_for(language: Option<&str>) -> &'static str {
    language
        .and_then(|code| CONFIGS.iter().find(|(c, _)| *c == code))
        .map_or(UNKNOWN, |(_, config)| config)
}

/// Every configuration a page can be indexed with, `simple` first.
pub fn all_configs() -> impl Iterator<Item = &'static str> {
    std::iter::once(UNKNOWN).chain(CONFIGS.iter().map(|(_, config)| *config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_languages_get_their_stemmer_and_the_rest_simple() {
        assert_eq!(config_for(Some("eng")), "english");
        assert_eq!(config_for(Some("deu")), "german");
        assert_eq!(
            config_for(Some("cmn")),
            "simple",
            "no Chinese configuration"
        );
        assert_eq!(config_for(None), "simple");
    }

    #[test]
    fn every_configuration_is_listed_once() {
        let mut all: Vec<_> = all_configs().collect();
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count);
    }
}
