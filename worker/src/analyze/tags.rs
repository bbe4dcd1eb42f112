//! Tags by embedding similarity: each tag of a fixed vocabulary is embedded once (from a short
//! description, which places it better than the bare word), and a page gets the tags whose
//! vectors are closest to its own.

/// (tag, the text embedded for it).
pub const TAG_VOCABULARY: &[(&str, &str)] = &[
    (
        "programming",
        "software programming, source code, programming languages and libraries",
    ),
    (
        "rust",
        "the Rust programming language, cargo crates, ownership and borrowing",
    ),
    (
        "python",
        "the Python programming language, pip packages, Django and pandas",
    ),
    (
        "javascript",
        "JavaScript, TypeScript, Node.js, React and frontend web frameworks",
    ),
    (
        "databases",
        "databases, SQL queries, PostgreSQL, indexes and transactions",
    ),
    (
        "machine-learning",
        "machine learning, neural networks, model training and embeddings",
    ),
    (
        "ai",
        "artificial intelligence, large language models, chatbots and AI research",
    ),
    (
        "web-development",
        "web development, HTTP APIs, browsers, HTML and CSS",
    ),
    (
        "devops",
        "devops, deployment, containers, Kubernetes, CI pipelines and monitoring",
    ),
    (
        "security",
        "computer security, vulnerabilities, encryption, authentication and privacy",
    ),
    (
        "cloud",
        "cloud computing, AWS, serverless functions and distributed infrastructure",
    ),
    (
        "performance",
        "software performance, benchmarks, latency, profiling and optimization",
    ),
    (
        "design",
        "user interface design, user experience, typography and visual design",
    ),
    (
        "productivity",
        "productivity, habits, time management, note taking and focus",
    ),
    (
        "career",
        "careers, job interviews, hiring, management and workplace advice",
    ),
    (
        "business",
        "business, startups, companies, strategy and entrepreneurship",
    ),
    (
        "finance",
        "personal finance, investing, stock markets, money and the economy",
    ),
    (
        "science",
        "science, physics, chemistry, biology and research discoveries",
    ),
    (
        "space",
        "space exploration, astronomy, planets, rockets and NASA",
    ),
    (
        "health",
        "health, medicine, diseases, fitness and nutrition",
    ),
    (
        "climate",
        "climate change, environment, energy, renewable power and sustainability",
    ),
    (
        "politics",
        "politics, government, elections, laws and public policy",
    ),
    (
        "history",
        "history, historical events, wars, ancient civilizations and biographies",
    ),
    (
        "education",
        "education, learning, schools, universities, courses and teaching",
    ),
    ("food", "food, cooking, recipes, restaurants and cuisine"),
    (
        "travel",
        "travel, tourism, destinations, flights and hotels",
    ),
    (
        "sports",
        "sports, football, basketball, athletes and competitions",
    ),
    ("music", "music, songs, albums, musicians and concerts"),
    (
        "film",
        "movies, films, television series, actors and cinema",
    ),
    ("books", "books, novels, authors, literature and reading"),
    (
        "gaming",
        "video games, gaming consoles, game design and esports",
    ),
    (
        "hardware",
        "computer hardware, CPUs, chips, electronics and devices",
    ),
];

/// The vocabulary's vectors (unit length, as the embedder returns them).
pub struct TagIndex {
    tags: Vec<(&'static str, Vec<f32>)>,
}

impl TagIndex {
    /// `vectors[i]` is the embedding of `TAG_VOCABULARY[i].1`.
    pub fn new(vectors: Vec<Vec<f32>>) -> Self {
        Self {
            tags: TAG_VOCABULARY
                .iter()
                .map(|(tag, _)| *tag)
                .zip(vectors)
                .collect(),
        }
    }

    /// The texts to embed, in vocabulary order.
    pub fn descriptions() -> Vec<String> {
        TAG_VOCABULARY
            .iter()
            .map(|(_, d)| (*d).to_owned())
            .collect()
    }

    /// Up to `max` tags with cosine similarity ≥ `min_similarity` to `embedding`, closest first.
    pub fn choose(&self, embedding: &[f32], max: usize, min_similarity: f32) -> Vec<String> {
        let mut scored: Vec<(f32, &str)> = self
            .tags
            .iter()
            .map(|(tag, v)| (dot(v, embedding), *tag))
            .filter(|(s, _)| *s >= min_similarity)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored
            .into_iter()
            .take(max)
            .map(|(_, t)| t.to_owned())
            .collect()
    }
}

/// Cosine similarity of unit vectors.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(i: usize) -> Vec<f32> {
        let mut v = vec![0.0; TAG_VOCABULARY.len()];
        v[i] = 1.0;
        v
    }

    #[test]
    fn picks_the_closest_tags_above_the_threshold() {
        let index = TagIndex::new((0..TAG_VOCABULARY.len()).map(unit).collect());
        // Mostly tag 4, some tag 1, a trace of tag 2.
        let mut page = vec![0.0; TAG_VOCABULARY.len()];
        page[4] = 0.8;
        page[1] = 0.55;
        page[2] = 0.05;
        let chosen = index.choose(&page, 3, 0.3);
        assert_eq!(chosen, vec![TAG_VOCABULARY[4].0, TAG_VOCABULARY[1].0]);
        assert_eq!(index.choose(&page, 1, 0.3), vec![TAG_VOCABULARY[4].0]);
        assert!(index.choose(&page, 3, 0.9).is_empty());
    }

    #[test]
    fn tags_are_unique_slugs() {
        let tags: std::collections::HashSet<_> = TAG_VOCABULARY.iter().map(|(t, _)| t).collect();
        assert_eq!(tags.len(), TAG_VOCABULARY.len());
        assert!(
            TAG_VOCABULARY
                .iter()
                .all(|(t, _)| t.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        );
    }
}
