//! The open streams of this instance by user: an event reaches only its own user's streams.

use std::sync::Arc;

use dashmap::DashMap;
use fuze_shared::feed::Entry;
use tokio::sync::broadcast;
use uuid::Uuid;

/// What a stream hears from the hub.
#[derive(Debug, Clone)]
pub enum Signal {
    Event(Arc<Entry>),
    /// The subscription was lost for a while: read what was missed from the kept events.
    CatchUp,
}

pub struct Hub {
    users: DashMap<Uuid, broadcast::Sender<Signal>>,
    buffer: usize,
}

impl Hub {
    /// `buffer`: signals a slow stream may fall behind before it catches up from Redis.
    pub fn new(buffer: usize) -> Self {
        Self {
            users: DashMap::new(),
            buffer: buffer.max(1),
        }
    }

    /// Starts hearing the user's events; the user's entry goes with its last subscription.
    pub fn subscribe(self: &Arc<Self>, user_id: Uuid) -> Subscription {
        let receiver = self
            .users
            .entry(user_id)
            .or_insert_with(|| broadcast::channel(self.buffer).0)
            .subscribe();
        Subscription {
            hub: self.clone(),
            user_id,
            receiver,
        }
    }

    /// Hands an event to its user's streams on this instance, if any.
    pub fn deliver(&self, entry: Entry) {
        if let Some(sender) = self.users.get(&entry.user_id) {
            // No receiver left is not an error: the stream is closing.
            let _ = sender.send(Signal::Event(Arc::new(entry)));
        }
    }

    /// Every stream reads what it may have missed.
    pub fn catch_up_all(&self) {
        for sender in self.users.iter() {
            let _ = sender.send(Signal::CatchUp);
        }
    }

    /// Users with an open stream here.
    pub fn users(&self) -> usize {
        self.users.len()
    }
}

pub struct Subscription {
    hub: Arc<Hub>,
    user_id: Uuid,
    pub receiver: broadcast::Receiver<Signal>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // This receiver still counts while it is being dropped.
        self.hub
            .users
            .remove_if(&self.user_id, |_, sender| sender.receiver_count() <= 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fuze_shared::feed::EventId;

    fn entry(user_id: Uuid, ms: u64) -> Entry {
        Entry {
            id: EventId { ms, seq: 0 },
            user_id,
            name: "job".into(),
            data: "{}".into(),
        }
    }

    #[tokio::test]
    async fn events_reach_only_their_users_streams_and_entries_go_with_them() {
        let hub = Arc::new(Hub::new(8));
        let (alice, bob) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut a = hub.subscribe(alice);
        let mut b = hub.subscribe(bob);
        hub.deliver(entry(alice, 1));
        match a.receiver.recv().await.expect("alice hears hers") {
            Signal::Event(e) => assert_eq!(e.user_id, alice),
            Signal::CatchUp => panic!("expected an event"),
        }
        assert!(b.receiver.try_recv().is_err(), "bob hears nothing of alice");
        let second = hub.subscribe(alice);
        drop(a);
        assert_eq!(hub.users(), 2, "alice still has a stream");
        drop(second);
        drop(b);
        assert_eq!(hub.users(), 0);
    }
}
