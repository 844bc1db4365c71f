//! How the HTTP work is scheduled against receiving and writing (HTTP_PRIORITY).
//!
//! `idle` and a nice value lower every HTTP thread once, when it starts. `adaptive` (the
//! default) keeps the HTTP threads at the ingest's priority and decides per request where its
//! work (reading files, evaluating, encoding the answer) runs:
//! - in place, on the worker that took the request (`block_in_place`), while the ingest and
//!   writer threads leave CPU to spare: a render then competes as an equal with whatever else
//!   runs on the machine, and is not held back behind unrelated processes;
//! - on a pool of SCHED_IDLE threads while the ingest and writer threads together used at least
//!   [`BUSY_SHARE`] of the CPUs over the last [`WINDOW`]: a point arriving then takes the CPU back
//!   from the render at once, so renders do not slow ingest when it needs the CPUs.
//!
//! The load is read from the watched threads' CPU-time clocks by a task on the HTTP runtime
//! every [`WINDOW`] (a few `clock_gettime` calls). A request decides once, at its start: a long
//! render begun just before a burst keeps its place until it ends (bounded by HTTP_TIMEOUT).
//! Two pools instead of one thread switching back and forth, because leaving SCHED_IDLE (or
//! lowering a nice value) needs CAP_SYS_NICE or a raised RLIMIT_NICE, which an operator's
//! service seldom has; entering it needs nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::ThreadPriority;

/// How often the watched threads' CPU time is sampled (and the window it is averaged over).
pub const WINDOW: Duration = Duration::from_millis(100);

/// The watched threads are busy (renders yield) when, over the last window, they used at least
/// this share of the CPUs: 0.5 of a core on 2 cores. Below it they are far from saturating the
/// machine and renders at the same priority cannot crowd them out.
pub const BUSY_SHARE: f64 = 0.25;

/// The threads renders must not slow (the ingest and writer threads), read through their
/// CPU-time clocks.
#[derive(Debug, Clone, Default)]
pub struct WatchedThreads {
    clocks: Vec<libc::clockid_t>,
}

impl WatchedThreads {
    /// Adds the thread behind `handle`; call while it is joinable (not yet joined). A thread
    /// whose clock cannot be had is left out (reported).
    pub fn add<T>(&mut self, handle: &std::thread::JoinHandle<T>) {
        use std::os::unix::thread::JoinHandleExt;
        let mut clock: libc::clockid_t = 0;
        // SAFETY: the pthread_t comes from a JoinHandle that is not joined or detached (we hold
        // a reference to it), so it names a live or zombie thread; the call writes one
        // clockid_t into `clock`, a valid local.
        let rc = unsafe { libc::pthread_getcpuclockid(handle.as_pthread_t(), &mut clock) };
        if rc == 0 {
            self.clocks.push(clock);
        } else {
            eprintln!("carbyne: cannot watch a thread's CPU time: {}", std::io::Error::from_raw_os_error(rc));
        }
    }

    /// Threads watched.
    pub fn len(&self) -> usize {
        self.clocks.len()
    }

    /// Whether no thread is watched.
    pub fn is_empty(&self) -> bool {
        self.clocks.is_empty()
    }

    /// CPU time the watched threads used so far, together. A thread that has ended counts 0
    /// from then on (its clock is gone), so callers take differences with saturation; once the
    /// kernel gives its thread id to a new thread, the clock reads that thread's time instead
    /// (the watched threads live as long as the server, so this only matters in tests).
    pub fn cpu_time(&self) -> Duration {
        let mut total = Duration::ZERO;
        for &clock in &self.clocks {
            let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: clock_gettime writes one timespec into `ts`, a valid local; an invalid
            // clock (an ended thread) is an error return, not undefined behaviour.
            if unsafe { libc::clock_gettime(clock, &mut ts) } == 0 {
                total += Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.clamp(0, 999_999_999) as u32);
            }
        }
        total
    }
}

/// Whether threads that used `cpu` over `elapsed` on a machine of `cpus` CPUs are busy.
pub fn is_busy(cpu: Duration, elapsed: Duration, cpus: usize) -> bool {
    let elapsed = elapsed.as_secs_f64();
    elapsed > 0.0 && cpu.as_secs_f64() / elapsed >= BUSY_SHARE * cpus.max(1) as f64
}

/// Samples `threads` every [`WINDOW`] and keeps `busy` up to date, until the runtime stops.
pub(super) async fn watch(threads: WatchedThreads, cpus: usize, busy: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(WINDOW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = (Instant::now(), threads.cpu_time());
    loop {
        tick.tick().await;
        let now = (Instant::now(), threads.cpu_time());
        busy.store(is_busy(now.1.saturating_sub(last.1), now.0 - last.0, cpus), Ordering::Relaxed);
        last = now;
    }
}

/// HTTP_PRIORITY = adaptive's pool of SCHED_IDLE threads (a runtime whose one worker stays
/// idle: only its blocking threads run work) and the flag its watcher keeps.
#[derive(Debug)]
pub(super) struct IdlePool {
    runtime: tokio::runtime::Runtime,
    busy: Arc<AtomicBool>,
}

impl IdlePool {
    /// Starts the pool: at most `max_threads` threads at once, each lowered to SCHED_IDLE.
    pub(super) fn start(max_threads: usize) -> std::io::Result<IdlePool> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(max_threads.max(1))
            .on_thread_start(|| lower_priority(ThreadPriority::Idle))
            .thread_name("http-idle")
            .build()?;
        Ok(IdlePool { runtime, busy: Arc::default() })
    }

    /// Lanes that send work here while the watcher says busy.
    pub(super) fn lanes(&self) -> Lanes {
        Lanes::adaptive(Arc::clone(&self.busy), self.runtime.handle().clone())
    }

    /// The watcher to spawn on the server's runtime; None when nothing is watched.
    pub(super) fn watcher(&self, threads: WatchedThreads) -> Option<impl std::future::Future<Output = ()>> {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        (!threads.is_empty()).then(|| watch(threads, cpus, Arc::clone(&self.busy)))
    }

    /// Stops the pool, waiting at most a second for work in flight.
    pub(super) fn shutdown(self) {
        self.runtime.shutdown_timeout(Duration::from_secs(1));
    }
}

/// Where a request's work runs.
#[derive(Debug, Clone, Default)]
pub(super) struct Lanes {
    /// Kept by [`watch`]: the watched threads are busy.
    busy: Arc<AtomicBool>,
    /// SCHED_IDLE threads for work while `busy`; None unless adaptive.
    idle: Option<tokio::runtime::Handle>,
}

impl Lanes {
    /// Adaptive lanes: work goes to `idle` while `busy` is set.
    pub(super) fn adaptive(busy: Arc<AtomicBool>, idle: tokio::runtime::Handle) -> Lanes {
        Lanes { busy, idle: Some(idle) }
    }

    /// Runs `work` (which may block) on a worker thread in place (`block_in_place`: the worker
    /// hands its other tasks on first) or, while busy, on the idle pool. Err if it panicked.
    pub(super) async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, ()> {
        match self.idle.as_ref().filter(|_| self.busy.load(Ordering::Relaxed)) {
            Some(pool) => pool.spawn_blocking(work).await.map_err(|_| ()),
            None => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tokio::task::block_in_place(work)))
                .map_err(|_| ()),
        }
    }
}

/// Sets the calling thread's priority. Lowering needs no privilege; a failure leaves the thread
/// at the process's priority, which only costs ingest some CPU under render load, so it is
/// reported once and not fatal. `Adaptive` changes nothing (its threads keep the ingest's
/// priority; its idle pool is lowered with `Idle`).
pub(super) fn lower_priority(priority: ThreadPriority) {
    let result = match priority {
        ThreadPriority::Adaptive | ThreadPriority::Nice(0) => return,
        ThreadPriority::Nice(n) => rustix::process::setpriority_process(Some(rustix::thread::gettid()), i32::from(n))
            .map_err(std::io::Error::from),
        ThreadPriority::Idle => {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: sched_setscheduler reads `param` (a valid, initialised sched_param that
            // outlives the call) and changes only the scheduling of the calling thread (pid 0).
            let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
            if rc == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        }
    };
    if let Err(e) = result {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| eprintln!("carbyne: cannot lower the HTTP threads' priority to {priority}: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_means_a_quarter_of_the_cpus() {
        let ms = Duration::from_millis;
        assert!(is_busy(ms(50), ms(100), 2));
        assert!(!is_busy(ms(49), ms(100), 2));
        assert!(is_busy(ms(400), ms(100), 16));
        assert!(!is_busy(ms(399), ms(100), 16));
        assert!(!is_busy(ms(0), ms(0), 2), "no time elapsed: not busy");
        assert!(is_busy(ms(25), ms(100), 0), "no CPU count: one");
    }

    /// The calling thread's clock.
    fn current() -> WatchedThreads {
        let mut clock: libc::clockid_t = 0;
        // SAFETY: pthread_self is always valid in the calling thread; the call writes one
        // clockid_t into `clock`, a valid local.
        let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) };
        assert_eq!(rc, 0);
        WatchedThreads { clocks: vec![clock] }
    }

    /// A thread that spins until its own clock says `cpu` was used.
    fn spin(cpu: Duration, stop: &AtomicBool) {
        let me = current();
        while me.cpu_time() < cpu && !stop.load(Ordering::Relaxed) {
            std::hint::spin_loop();
        }
    }

    #[test]
    fn watched_clocks_count_another_threads_cpu_time() {
        let (spun, done) = std::sync::mpsc::channel();
        let (end, ended) = std::sync::mpsc::channel::<()>();
        let spinner = std::thread::spawn(move || {
            spin(Duration::from_millis(60), &AtomicBool::new(false));
            spun.send(()).unwrap();
            let _ = ended.recv(); // alive (its clock readable) until told
        });
        let mut watched = WatchedThreads::default();
        watched.add(&spinner);
        assert_eq!(watched.len(), 1);
        done.recv().unwrap();
        let used = watched.cpu_time();
        assert!(used >= Duration::from_millis(60), "the spinner's clock read from here: {used:?}");
        end.send(()).unwrap();
        spinner.join().unwrap();
        // The ended spinner's thread id may already belong to another test's thread: a clock no
        // thread can have stands for it (the kernel's encoding of a thread's CPU clock, as
        // glibc's pthread_getcpuclockid builds it, for an id above the kernel's PID_MAX_LIMIT).
        let no_thread: libc::clockid_t = (!(1 << 23) << 3) | 6;
        assert_eq!(
            WatchedThreads { clocks: vec![no_thread] }.cpu_time(),
            Duration::ZERO,
            "a clock that is gone reads 0"
        );
        assert_eq!(WatchedThreads::default().cpu_time(), Duration::ZERO);
    }

    #[test]
    fn the_watcher_sees_a_busy_thread_and_its_end() {
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let spinner = std::thread::spawn(move || spin(Duration::from_secs(3600), &s));
        let busy = Arc::new(AtomicBool::new(false));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        // One CPU: a spinning thread is busy whenever it gets a quarter of one.
        let mut watched = WatchedThreads::default();
        watched.add(&spinner);
        let watcher = runtime.spawn(watch(watched, 1, Arc::clone(&busy)));
        let wait_for = |want: bool| {
            runtime.block_on(async {
                for _ in 0..200 {
                    if busy.load(Ordering::Relaxed) == want {
                        return true;
                    }
                    tokio::time::sleep(WINDOW).await;
                }
                false
            })
        };
        assert!(wait_for(true), "a spinning thread is busy");
        stop.store(true, Ordering::Relaxed);
        spinner.join().unwrap();
        assert!(wait_for(false), "an ended thread is not");
        watcher.abort();
    }

    /// The calling thread's scheduling policy.
    fn policy() -> i32 {
        // SAFETY: asks about the calling thread only (pid 0); no memory is passed.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn adaptive_lanes_use_the_idle_pool_only_while_busy() {
        let pool = IdlePool::start(2).unwrap();
        let server = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
        let busy = Arc::clone(&pool.busy);
        let lanes = pool.lanes();
        let here = std::thread::current().id();
        let ask =
            |lanes: Lanes| server.block_on(async move { lanes.run(|| (policy(), std::thread::current().id())).await });
        let (in_place, thread) = ask(lanes.clone()).unwrap();
        assert_eq!(in_place, libc::SCHED_OTHER, "not busy: in place, at the ingest's priority");
        assert_eq!(thread, here, "block_on runs the task on this thread");
        busy.store(true, Ordering::Relaxed);
        let (pooled, thread) = ask(lanes.clone()).unwrap();
        assert_eq!(pooled, libc::SCHED_IDLE, "busy: on the idle pool");
        assert_ne!(thread, here);
        assert_eq!(ask(Lanes::default()).unwrap().0, libc::SCHED_OTHER, "fixed priorities: always in place");
        let panicked = server.block_on(async move { lanes.run(|| panic!("a bug in a handler")).await });
        assert!(panicked.is_err(), "a panic on the pool is an error, not a crash");
        busy.store(false, Ordering::Relaxed);
        pool.shutdown();
    }

    #[test]
    fn an_idle_pool_watches_only_when_there_is_something_to_watch() {
        let pool = IdlePool::start(1).unwrap();
        assert!(pool.watcher(WatchedThreads::default()).is_none());
        assert!(pool.watcher(WatchedThreads { clocks: vec![current().clocks[0]] }).is_some());
        pool.shutdown();
    }
}
