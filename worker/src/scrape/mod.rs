//! SSRF-safe page fetching and main-text extraction.
