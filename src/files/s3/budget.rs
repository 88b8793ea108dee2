//! The memory of part buffers, shared by every transfer to and from one bucket
//! (`storage.s3.transfer_memory_mib`, counted in parts of `part_size_mib`).
//!
//! A transfer takes its parts when it starts and gives them back when it ends. While at
//! least half the budget stays free a transfer takes all it wants (several parts in flight);
//! after that it takes the least it can work with, so later transfers still find room; when
//! even that is gone the caller falls back to what needs no buffers (an upload is staged in
//! a local file, a download streams without read-ahead). Many parallel transfers thus never
//! hold more than the budget, and none waits on another in the middle of a transfer.
//!
//! A staged upload is sent when it completes, with two parts: from the shared budget when
//! they are free, else from a lane of two parts kept for that alone. Its bytes are on the
//! local disk, so a send always moves on; it never waits for transfers whose clients have
//! stalled while holding the shared budget (at most the budget plus the lane is in use).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Part buffers left, out of `total`.
pub(super) struct PartBudget {
    free: Arc<Semaphore>,
    total: u32,
    /// Two parts for sending staged uploads when the shared budget is spent.
    lane: Arc<Semaphore>,
}

/// Parts of a staged upload's send.
const SEND_PARTS: u32 = 2;

/// Parts taken from the budget; given back when dropped.
pub(super) struct Parts(OwnedSemaphorePermit);

impl Parts {
    pub(super) fn count(&self) -> usize {
        self.0.num_permits()
    }
}

impl PartBudget {
    pub(super) fn new(total: u32) -> PartBudget {
        PartBudget {
            free: Arc::new(Semaphore::new(total as usize)),
            total,
            lane: Arc::new(Semaphore::new(SEND_PARTS as usize)),
        }
    }

    /// `want` parts while at least half the budget would stay free, else `least`; `None`
    /// when not even `least` are free now.
    pub(super) fn try_take(&self, want: u32, least: u32) -> Option<Parts> {
        let free = self.free.available_permits() as u32;
        let n = if free >= want + self.total / 2 {
            want
        } else {
            least
        };
        let taken = self
            .free
            .clone()
            .try_acquire_many_owned(n)
            .ok()
            .or_else(|| {
                // Others took some meanwhile: the least, if it is still there.
                self.free.clone().try_acquire_many_owned(least).ok()
            });
        taken.map(Parts)
    }

    /// `n` parts of the shared budget, waiting until they are free.
    pub(super) async fn take(&self, n: u32) -> Parts {
        let n = n.min(self.total);
        Parts(
            self.free
                .clone()
                .acquire_many_owned(n)
                .await
                .expect("the budget's semaphore is never closed"),
        )
    }

    /// The parts to send a staged upload with: shared ones if free, else the lane's
    /// (waiting only for other sends, which always move on).
    pub(super) async fn take_for_send(&self) -> Parts {
        if let Ok(parts) = self.free.clone().try_acquire_many_owned(SEND_PARTS) {
            return Parts(parts);
        }
        Parts(
            self.lane
                .clone()
                .acquire_many_owned(SEND_PARTS)
                .await
                .expect("the lane's semaphore is never closed"),
        )
    }

    /// Parts free now (for tests and metrics).
    #[cfg(test)]
    pub(super) fn free(&self) -> usize {
        self.free.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn greedy_while_half_is_free_then_the_least_then_nothing() {
        let budget = PartBudget::new(16);
        let first = budget.try_take(5, 2).expect("free");
        assert_eq!(first.count(), 5);
        // 11 free: taking 5 would leave less than half.
        let second = budget.try_take(5, 2).expect("free");
        assert_eq!(second.count(), 2);
        let rest: Vec<Parts> = (0..4)
            .map(|_| budget.try_take(5, 2).expect("free"))
            .collect();
        assert_eq!(budget.free(), 1);
        assert!(budget.try_take(5, 2).is_none(), "one part is not enough");
        drop(rest);
        assert_eq!(budget.free(), 9);
        drop((first, second));
        assert_eq!(budget.free(), 16);
    }

    #[tokio::test]
    async fn take_waits_for_parts_given_back() {
        let budget = Arc::new(PartBudget::new(4));
        let all = budget.try_take(4, 4).expect("free");
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.take(2).await.count() })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(all);
        assert_eq!(waiter.await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_send_uses_the_lane_when_the_shared_budget_is_spent() {
        let budget = PartBudget::new(4);
        let all = budget.try_take(4, 4).expect("free");
        let first = budget.take_for_send().await;
        assert_eq!((first.count(), budget.free()), (2, 0), "from the lane");
        drop(all);
        let second = budget.take_for_send().await;
        assert_eq!((second.count(), budget.free()), (2, 2), "shared again");
    }
}
