//! The one backoff of the whole program, for every request that is safe to repeat (registry
//! reads and uploads, API reads, package checks): 250 ms, doubling, capped at 8 s.

use std::time::Duration;

const FIRST: Duration = Duration::from_millis(250);
const LONGEST: Duration = Duration::from_secs(8);

/// How long to wait after failed attempt number `attempt` (1 for the first).
pub fn backoff(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    (FIRST * 2u32.pow(doublings)).min(LONGEST)
}

/// Waits before the next attempt.
pub fn pause(attempt: u32) {
    std::thread::sleep(backoff(attempt));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_a_quarter_second_up_to_eight() {
        let waits: Vec<u128> = (1..=8).map(|a| backoff(a).as_millis()).collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
    }
}
