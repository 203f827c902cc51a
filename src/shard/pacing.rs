//! Work a shard spreads over time instead of doing at once: [`pace`] runs
//! a task that handles a batch of items per tick, so a burst (every session
//! of a shard re-reading its mailbox after a resync) reaches the store as a
//! steady stream.

use std::time::Duration;

/// Spawns a task on this shard that calls `each` on `items`, `per_tick` of
/// them at once and then waits `tick` before the next batch.
pub fn pace<T: 'static>(items: Vec<T>, per_tick: usize, tick: Duration, each: impl Fn(T) + 'static) {
    monoio::spawn(async move {
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            items.by_ref().take(per_tick.max(1)).for_each(&each);
            if items.peek().is_some() {
                monoio::time::sleep(tick).await;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Instant;

    use super::*;
    use crate::shard::runtime::{block_on, ChosenDriver};

    /// Goal: every item is handled once, in batches of at most `per_tick`,
    /// a tick apart. Method: 1,050 items, 500 a tick of 20 ms: three
    /// batches, the last at least 40 ms after the first.
    #[test]
    fn items_are_handled_once_a_batch_per_tick() {
        let handled = block_on(ChosenDriver::Epoll, async {
            let handled: Rc<RefCell<Vec<(usize, Instant)>>> = Rc::default();
            let log = handled.clone();
            pace((0..1_050).collect(), 500, Duration::from_millis(20), move |i| {
                log.borrow_mut().push((i, Instant::now()))
            });
            let deadline = Instant::now() + Duration::from_secs(5);
            while handled.borrow().len() < 1_050 && Instant::now() < deadline {
                monoio::time::sleep(Duration::from_millis(5)).await;
            }
            let handled = handled.borrow().clone();
            handled
        })
        .unwrap();
        let order: Vec<usize> = handled.iter().map(|(i, _)| *i).collect();
        assert_eq!(order, (0..1_050).collect::<Vec<_>>());
        let at = |i: usize| handled[i].1;
        assert!(at(499).duration_since(at(0)) < Duration::from_millis(20), "one batch");
        assert!(at(500).duration_since(at(499)) >= Duration::from_millis(20));
        assert!(at(1_000).duration_since(at(999)) >= Duration::from_millis(20));
    }
}
