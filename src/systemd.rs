//! systemd integration for `serve` under `Type=notify`: `READY=1` once every listener is
//! bound, `WATCHDOG=1` pings at half of `WatchdogSec=` while the async runtime is responsive,
//! `STOPPING=1` when shutdown begins. Outside systemd (`NOTIFY_SOCKET` unset) every call is a
//! no-op, so the same binary runs from a shell, a container or the tests.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

/// Tells systemd the service is ready, then pings its watchdog until `shutdown` (when
/// `WATCHDOG_USEC` is set for this process), then says it is stopping. Spawn it after the
/// listeners are bound. A ping comes from a runtime task, so a stalled runtime (the sockets,
/// HTTP and MQTT all run there) stops the pings and systemd restarts the service.
pub async fn ready_then_watchdog(shutdown: CancellationToken) {
    send(&[NotifyState::Ready, NotifyState::Status("serving")]);
    match watchdog_interval() {
        Some(every) => {
            tracing::info!(
                interval_ms = every.as_millis() as u64,
                "systemd watchdog enabled"
            );
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => send(&[NotifyState::Watchdog]),
                }
            }
        }
        None => shutdown.cancelled().await,
    }
    send(&[NotifyState::Stopping, NotifyState::Status("draining calls")]);
}

/// Half the watchdog timeout, as sd_watchdog_enabled(3) advises; `None` when disabled.
fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|d| !d.is_zero())
        .map(|d| d / 2)
}

fn send(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}
