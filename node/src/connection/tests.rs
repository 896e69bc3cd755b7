use std::pin::Pin;
use std::sync::Arc;

use std::task::{Context, Poll};
use tokio::sync::mpsc;

use super::*;

/// What a socket was asked to do, in order.
#[derive(Debug, PartialEq)]
enum Did {
    Frame(Vec<u8>),
    Close(String),
    Flush,
}

#[derive(Debug)]
enum Sent {
    Frame(Vec<u8>),
    Close(String),
}

impl WsMessage for Sent {
    fn classify(self) -> Incoming {
        Incoming::Ignore
    }
    fn binary(bytes: Vec<u8>) -> Self {
        Self::Frame(bytes)
    }
    fn close(reason: String) -> Self {
        Self::Close(reason)
    }
    fn close_too_big(reason: String) -> Self {
        Self::Close(reason)
    }
    fn ping() -> Self {
        Self::Frame(Vec::new())
    }
}

#[derive(Default)]
struct Recorder(Vec<Did>);

impl Sink<Sent> for Recorder {
    type Error = std::convert::Infallible;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(mut self: Pin<&mut Self>, item: Sent) -> Result<(), Self::Error> {
        self.0.push(match item {
            Sent::Frame(f) => Did::Frame(f),
            Sent::Close(r) => Did::Close(r),
        });
        Ok(())
    }
    fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.push(Did::Flush);
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn frames_queued_together_leave_with_one_flush() {
    let (tx, mut rx) = mpsc::channel(8);
    for b in [2u8, 3] {
        tx.try_send(Outbound::Frame(vec![b])).unwrap();
    }
    let mut sink = Recorder::default();
    write_queued(&mut sink, Outbound::Frame(vec![1]), &mut rx)
        .await
        .unwrap();
    assert_eq!(
        sink.0,
        [
            Did::Frame(vec![1]),
            Did::Frame(vec![2]),
            Did::Frame(vec![3]),
            Did::Flush
        ]
    );
    // A lone frame does not wait for company.
    let mut sink = Recorder::default();
    write_queued(&mut sink, Outbound::Frame(vec![4]), &mut rx)
        .await
        .unwrap();
    assert_eq!(sink.0, [Did::Frame(vec![4]), Did::Flush]);
}

#[tokio::test]
async fn a_close_sends_what_came_before_it_and_nothing_after() {
    let (tx, mut rx) = mpsc::channel(8);
    tx.try_send(Outbound::Close("bye".into())).unwrap();
    tx.try_send(Outbound::Frame(vec![9])).unwrap();
    let mut sink = Recorder::default();
    let end = write_queued(&mut sink, Outbound::Frame(vec![1]), &mut rx).await;
    assert_eq!(end, Err(Some("bye".to_owned())));
    assert_eq!(sink.0, [Did::Frame(vec![1]), Did::Flush]);
}

#[tokio::test]
async fn one_write_takes_a_bounded_number_of_frames() {
    let (tx, mut rx) = mpsc::channel(2 * FRAMES_PER_WRITE);
    for _ in 0..2 * FRAMES_PER_WRITE {
        tx.try_send(Outbound::Frame(vec![0])).unwrap();
    }
    let mut sink = Recorder::default();
    write_queued(&mut sink, Outbound::Frame(vec![0]), &mut rx)
        .await
        .unwrap();
    let frames = sink.0.iter().filter(|d| matches!(d, Did::Frame(_))).count();
    assert_eq!(frames, FRAMES_PER_WRITE);
    assert_eq!(sink.0.last(), Some(&Did::Flush));
}

/// A message on the fake socket below.
#[derive(Debug, Clone, PartialEq)]
enum Wire {
    Binary(Vec<u8>),
    Close(String),
    Ping,
    Pong,
    /// Read as the socket failing with this error.
    Fail(String),
}

impl WsMessage for Wire {
    fn classify(self) -> Incoming {
        match self {
            Wire::Binary(b) => Incoming::Binary(b),
            Wire::Close(_) => Incoming::Close,
            Wire::Ping | Wire::Pong | Wire::Fail(_) => Incoming::Ignore,
        }
    }
    fn binary(bytes: Vec<u8>) -> Self {
        Wire::Binary(bytes)
    }
    fn close(reason: String) -> Self {
        Wire::Close(reason)
    }
    fn close_too_big(reason: String) -> Self {
        Wire::Close(format!("1009 {reason}"))
    }
    fn ping() -> Self {
        Wire::Ping
    }
}

impl SocketError for String {
    fn message_too_big(&self) -> bool {
        self.starts_with("too big")
    }
}

/// A socket the test feeds and watches: what the pump reads, and what it sends. With
/// `answer_pings`, it answers each ping as a live peer does.
struct FakeSocket {
    incoming: mpsc::UnboundedReceiver<Wire>,
    loopback: mpsc::UnboundedSender<Wire>,
    sent: Arc<std::sync::Mutex<Vec<Wire>>>,
    read: Arc<std::sync::atomic::AtomicUsize>,
    answer_pings: bool,
}

impl Stream for FakeSocket {
    type Item = Result<Wire, String>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.incoming.poll_recv(cx) {
            Poll::Ready(Some(Wire::Fail(error))) => Poll::Ready(Some(Err(error))),
            Poll::Ready(Some(m)) => {
                self.read.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Poll::Ready(Some(Ok(m)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Sink<Wire> for FakeSocket {
    type Error = String;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), String>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, item: Wire) -> Result<(), String> {
        if item == Wire::Ping && self.answer_pings {
            let _ = self.loopback.send(Wire::Pong);
        }
        self.sent.lock().unwrap().push(item);
        Ok(())
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), String>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), String>> {
        Poll::Ready(Ok(()))
    }
}

struct Fixture {
    host: crate::host::Host<ibis_shared::sync::OpenPolicy>,
    feed: mpsc::UnboundedSender<Wire>,
    sent: Arc<std::sync::Mutex<Vec<Wire>>>,
    read: Arc<std::sync::atomic::AtomicUsize>,
    pump: tokio::task::JoinHandle<()>,
}

fn fixture(limits: ConnectionLimits, answer_pings: bool) -> Fixture {
    use ibis_shared::protocol::PeerId;
    use ibis_shared::sync::{EngineConfig, OpenPolicy};
    let (host, _engine) = crate::host::start(
        EngineConfig::new(PeerId::new("node"), None),
        OpenPolicy,
        crate::host::MemoryStorage::default(),
        crate::host::Held::default(),
        Arc::new(crate::metrics::Metrics::default()),
    );
    let (feed, incoming) = mpsc::unbounded_channel();
    let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
    let read = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let socket = FakeSocket {
        incoming,
        loopback: feed.clone(),
        sent: sent.clone(),
        read: read.clone(),
        answer_pings,
    };
    let pump = tokio::spawn(pump(
        socket,
        host.clone(),
        Direction::Incoming,
        (),
        PumpOptions::new(limits),
    ));
    Fixture {
        host,
        feed,
        sent,
        read,
        pump,
    }
}

fn closed_with(sent: &std::sync::Mutex<Vec<Wire>>) -> Option<String> {
    sent.lock().unwrap().iter().find_map(|w| match w {
        Wire::Close(reason) => Some(reason.clone()),
        _ => None,
    })
}

const QUIET: ConnectionLimits = crate::limits::ANONYMOUS;

#[tokio::test(start_paused = true)]
async fn a_connection_that_sends_nothing_is_closed_after_its_idle_timeout() {
    let f = fixture(QUIET, true);
    tokio::time::sleep(std::time::Duration::from_secs(9 * 60)).await;
    assert_eq!(closed_with(&f.sent), None, "pongs keep it alive until then");
    tokio::time::sleep(std::time::Duration::from_secs(2 * 60)).await;
    assert_eq!(closed_with(&f.sent).as_deref(), Some("idle for 10 minutes"));
    assert!(
        f.pump.is_finished()
            || tokio::time::timeout(std::time::Duration::from_secs(1), f.pump)
                .await
                .is_ok()
    );
    drop(f.feed);
    f.host.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_stops_answering_pings_is_closed() {
    let limits = ConnectionLimits {
        idle_timeout: None,
        ..QUIET
    };
    let f = fixture(limits, false);
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    assert_eq!(closed_with(&f.sent), None);
    assert!(f.sent.lock().unwrap().contains(&Wire::Ping));
    tokio::time::sleep(std::time::Duration::from_secs(61)).await;
    assert_eq!(
        closed_with(&f.sent).as_deref(),
        Some("no answer for 90 seconds")
    );
    f.host.shutdown().await;
}

/// While the engine is busy, a connection reads at most its budget of frames: the rest
/// stay in the socket (TCP pushes back on the sender).
#[tokio::test]
async fn a_busy_engine_stops_the_reading_at_the_connections_budget() {
    let limits = ConnectionLimits {
        max_queued_inbound_bytes: 4 * 1024,
        ..QUIET
    };
    let f = fixture(limits, true);
    // The engine is busy until told otherwise.
    let (release, busy) = std::sync::mpsc::channel::<()>();
    f.host
        .send(crate::host::HostInput::Run(Box::new(move |_, _| {
            let _ = busy.recv();
        })));
    for _ in 0..100 {
        f.feed.send(Wire::Binary(vec![0; 1024])).unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let read = f.read.load(std::sync::atomic::Ordering::SeqCst);
    assert!(read <= 5, "read {read} frames of 1 KiB with a 4 KiB budget");
    // Once the engine takes them in, the rest are read (these are not protocol frames,
    // so the engine then closes the connection: it was reading again).
    release.send(()).unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while closed_with(&f.sent).is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the connection went on"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    f.host.shutdown().await;
}

/// A frame over the size limit ends the connection with close code 1009, which tells the
/// sender what happened; any other socket error with 1008 and the error.
#[tokio::test]
async fn a_frame_too_big_is_answered_with_1009() {
    for (error, expected) in [
        (
            "too big: Message too long",
            "1009 connection error: too big: Message too long",
        ),
        ("reset", "connection error: reset"),
    ] {
        let f = fixture(QUIET, true);
        f.feed.send(Wire::Fail(error.into())).unwrap();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while closed_with(&f.sent).is_none() {
            assert!(tokio::time::Instant::now() < deadline, "not closed");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(closed_with(&f.sent).as_deref(), Some(expected));
        f.host.shutdown().await;
    }
}

#[test]
fn a_peer_faster_than_its_byte_rate_is_paused_until_it_is_within_it() {
    let start = Instant::now();
    let mut rate = ByteRate::new(1000);
    // Four seconds' worth may come at once.
    assert_eq!(rate.take(4000, start), None);
    // Then the next 500 bytes wait half a second.
    let resume = rate.take(500, start).expect("paused");
    assert_eq!(resume - start, std::time::Duration::from_millis(500));
    // A second later, a second's worth has come back.
    assert_eq!(
        rate.take(400, start + std::time::Duration::from_millis(1500)),
        None
    );
}
