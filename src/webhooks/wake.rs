use std::sync::LazyLock;

use tokio::sync::watch;

/// Bumped when an event is written: every delivery worker of the process looks at once
/// (a watch channel, so a wake while a worker is busy is not lost). Other processes find
/// the rows by polling.
static WAKE: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);

pub(crate) fn wake() {
    WAKE.send_modify(|n| *n = n.wrapping_add(1));
}

pub(crate) fn woken() -> watch::Receiver<u64> {
    WAKE.subscribe()
}
