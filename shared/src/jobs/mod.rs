//! Background jobs: payloads (enqueued by the api, run by the worker), the fair queues in front of
//! apalis-redis, Fuze's own job status records, retry policy and wake-ups.

pub mod admin;
pub mod codec;
pub mod fair;
pub mod payload;
pub mod queue;
pub mod records;
pub mod reindex;
pub mod retry;
pub mod wake;
pub mod warm;

pub use codec::{PassThroughCodec, RawPayload};
pub use fair::{Lane, Owner, Ticket};
pub use payload::{StageJob, WarmJob};
pub use queue::{JobQueues, QueueName, WorkerStorage};
pub use records::JobRecord;
