//! Payloads travel as raw bytes and are decoded by the job handler itself.
//!
//! apalis decodes task arguments before the handler runs, and a decode error there kills the worker
//! and leaves the task in flight as a poison pill. Passing bytes through means no payload can fail
//! to "decode" inside apalis; the handler parses them and fails just that job on bad input.

use std::convert::Infallible;

use apalis_core::backend::codec::Codec;

/// A job payload as pushed: JSON bytes, not yet parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPayload(pub Vec<u8>);

/// The identity codec for [`RawPayload`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PassThroughCodec;

impl Codec<RawPayload> for PassThroughCodec {
    type Error = Infallible;
    type Compact = Vec<u8>;

    fn encode(&self, val: &RawPayload) -> Result<Vec<u8>, Infallible> {
        Ok(val.0.clone())
    }

    fn decode(&self, val: &Vec<u8>) -> Result<RawPayload, Infallible> {
        Ok(RawPayload(val.clone()))
    }
}
