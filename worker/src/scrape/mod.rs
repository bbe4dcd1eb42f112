//! SSRF-safe page fetching and main-text extraction.
//!
//! - [`Scraper::fetch`]: GET a user-supplied URL. Every hop is checked by the address guard
//!   (IP literals before the request, names inside the DNS resolver reqwest connects with),
//!   redirects are followed by hand, and one deadline and a body-size cap bound the work.
//! - [`extract`]: pure HTML -> title / description / canonical URL / main text, using
//!   dom_smoothie (Readability port), tightened by rs-trafilatura where the two agree on the
//!   article (`tighten`), with a whole-body fallback.
//!
//! Layout: `guard` (address policy), `resolve` (vetting resolver), `fetch` (client,
//! redirects, status), `body` (content type, capped read, charset), `extract`, `tighten`,
//! `error`.

mod body;
mod error;
mod extract;
mod fetch;
mod guard;
mod resolve;
mod tighten;

pub use error::ScrapeError;
pub use extract::{ExtractedPage, FieldLimits, extract};
pub use fetch::{FetchedPage, Refetched, Scraper, Validators};
pub use fuze_shared::config::ScraperConfig;
