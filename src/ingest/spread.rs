//! Accepted TCP connections spread evenly over the ingest threads.
//!
//! Every ingest thread listens on its own SO_REUSEPORT socket, and the kernel picks the socket
//! for each new connection by a hash of its addresses and ports: a relay or a load generator with
//! four connections lands 3:1 or 4:0 on two threads about as often as 2:2, and one core then does
//! most of the work while the other idles. So the thread that accepts a connection does not
//! always serve it: it hands the connection to the thread serving the fewest, if that thread
//! serves fewer than itself, and the receiving thread adopts it at its next loop turn (within
//! the loop's wait, 20 ms, when idle). A connection is handed once, before anything was read
//! from it, and then belongs to one thread for its whole life, so everything one sender sends on
//! it is still read in order by one thread (statsd's per-sender gauge order holds).
//!
//! Accepts and closes are per connection, not per point: one mutex guards the counts and the
//! inboxes. The per-turn check for mail is one atomic load.
//!
//! At stop, each thread closes its inbox and adopts what is in it before its drain reads every
//! connection; a thread that finds an inbox closed keeps the connection itself, so no handed
//! connection is ever left unread.

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::decode::DecoderKind;

/// A connection handed from the thread that accepted it to the one that serves it.
#[derive(Debug)]
pub struct Handed {
    pub stream: TcpStream,
    pub kind: DecoderKind,
}

/// The counts and inboxes of all ingest threads.
#[derive(Debug)]
pub struct Spread {
    state: Mutex<State>,
    /// Per thread: its inbox may hold connections (set under the lock, cleared by the owner).
    mail: Box<[AtomicBool]>,
}

#[derive(Debug)]
struct State {
    /// Per thread: connections it serves, including those handed to it and not yet adopted.
    served: Vec<usize>,
    /// Per thread: connections handed to it; `None` once it stopped adopting.
    inboxes: Vec<Option<Vec<Handed>>>,
}

impl Spread {
    /// The spread of `n_threads` ingest threads, one handle each (in thread order).
    pub fn handles(n_threads: usize) -> Vec<SpreadHandle> {
        let spread = Arc::new(Spread {
            state: Mutex::new(State {
                served: vec![0; n_threads],
                inboxes: (0..n_threads).map(|_| Some(Vec::new())).collect(),
            }),
            mail: (0..n_threads).map(|_| AtomicBool::new(false)).collect(),
        });
        (0..n_threads).map(|me| SpreadHandle { spread: Arc::clone(&spread), me }).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent between statements: a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One ingest thread's view of the spread.
#[derive(Debug, Clone)]
pub struct SpreadHandle {
    spread: Arc<Spread>,
    me: usize,
}

impl SpreadHandle {
    /// Decides who serves a connection this thread just accepted: `Some` gives it back to be
    /// served here, `None` means it was handed to another thread. Counted either way.
    pub fn place(&self, conn: Handed) -> Option<Handed> {
        let mut state = self.spread.lock();
        let mine = state.served[self.me];
        let fewest = (0..state.served.len())
            .filter(|&t| t != self.me && state.inboxes[t].is_some())
            .min_by_key(|&t| state.served[t])
            .filter(|&t| state.served[t] < mine);
        match fewest {
            Some(t) => {
                state.served[t] += 1;
                if let Some(inbox) = state.inboxes[t].as_mut() {
                    inbox.push(conn);
                }
                self.spread.mail[t].store(true, Ordering::Release);
                None
            }
            None => {
                state.served[self.me] += 1;
                Some(conn)
            }
        }
    }

    /// Connections handed to this thread since the last call (usually none: one atomic load).
    pub fn take_mail(&self) -> Vec<Handed> {
        if !self.spread.mail[self.me].load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut state = self.spread.lock();
        self.spread.mail[self.me].store(false, Ordering::Relaxed);
        state.inboxes[self.me].as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// At stop: no more connections for this thread; returns the last ones handed to it.
    pub fn close_inbox(&self) -> Vec<Handed> {
        let mut state = self.spread.lock();
        self.spread.mail[self.me].store(false, Ordering::Relaxed);
        state.inboxes[self.me].take().unwrap_or_default()
    }

    /// A connection this thread served has closed.
    pub fn ended(&self) {
        let mut state = self.spread.lock();
        state.served[self.me] = state.served[self.me].saturating_sub(1);
    }

    /// Connections each thread serves.
    #[cfg(test)]
    fn served(&self) -> Vec<usize> {
        self.spread.lock().served.clone()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A real connected socket (the other end is dropped: only the descriptor matters here).
    fn conn(listener: &TcpListener) -> Handed {
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        Handed { stream, kind: DecoderKind::Lines }
    }

    #[test]
    fn connections_accepted_by_one_thread_end_up_even() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let handles = Spread::handles(3);
        // Thread 0 accepts all seven.
        let kept = (0..7).filter_map(|_| handles[0].place(conn(&listener))).count();
        assert_eq!(kept, 3);
        assert_eq!(handles[0].served(), vec![3, 2, 2]);
        assert_eq!(handles[1].take_mail().len(), 2);
        assert_eq!(handles[2].take_mail().len(), 2);
        assert!(handles[1].take_mail().is_empty(), "mail is taken once");
    }

    #[test]
    fn a_thread_keeps_what_it_accepts_while_it_serves_the_fewest() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let handles = Spread::handles(2);
        assert!(handles[0].place(conn(&listener)).is_some());
        assert!(handles[1].place(conn(&listener)).is_some());
        assert!(handles[1].place(conn(&listener)).is_some(), "a tie stays here");
        assert!(handles[1].place(conn(&listener)).is_none(), "1 against 2: handed over");
        assert_eq!(handles[0].take_mail().len(), 1);
        assert_eq!(handles[0].served(), vec![2, 2]);
        handles[1].ended();
        handles[1].ended();
        assert_eq!(handles[1].served(), vec![2, 0]);
        assert!(handles[0].place(conn(&listener)).is_none(), "thread 1 now serves fewer");
        assert_eq!(handles[1].take_mail().len(), 1);
    }

    #[test]
    fn a_closed_inbox_gets_nothing_and_gives_back_what_it_held() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let handles = Spread::handles(2);
        assert!(handles[0].place(conn(&listener)).is_some());
        assert!(handles[0].place(conn(&listener)).is_none());
        let last = handles[1].close_inbox();
        assert_eq!(last.len(), 1, "the connection handed before the close is adopted at the close");
        assert!(handles[1].take_mail().is_empty());
        for _ in 0..3 {
            assert!(handles[0].place(conn(&listener)).is_some(), "thread 1 stopped: thread 0 keeps them");
        }
        assert_eq!(handles[0].served(), vec![4, 1]);
    }

    #[test]
    fn threads_placing_at_once_lose_no_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let handles = Spread::handles(4);
        let per_thread = 25;
        let kept: Vec<usize> = std::thread::scope(|scope| {
            let workers: Vec<_> = handles
                .iter()
                .map(|h| {
                    let listener = &listener;
                    scope.spawn(move || {
                        let mut kept = 0;
                        let mut adopted = 0;
                        for k in 0..per_thread {
                            // Thread 0 accepts most: it sends most of its connections away.
                            if h.me == 0 || k % 5 == 0 {
                                kept += usize::from(h.place(conn(listener)).is_some());
                            }
                            adopted += h.take_mail().len();
                        }
                        kept + adopted
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let leftovers: usize = handles.iter().map(|h| h.close_inbox().len()).sum();
        let accepted = per_thread + 3 * (per_thread / 5);
        assert_eq!(kept.iter().sum::<usize>() + leftovers, accepted);
        let served = handles[0].served();
        assert_eq!(served.iter().sum::<usize>(), accepted);
        let (min, max) = (served.iter().min().unwrap(), served.iter().max().unwrap());
        assert!(max - min <= 1, "{served:?}");
    }
}
