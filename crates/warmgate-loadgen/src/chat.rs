//! Chat clients that stay connected: each is admitted, joins one room, and
//! sends acknowledged `chat` messages at a steady pace, recording when each
//! was sent and acked and every message it receives. [`deliveries`] then
//! checks that every acked message reached every member of its room that
//! was connected throughout, exactly once.
//!
//! A message's `client_msg_id` is `SENDER.SEQ`, so a receiver knows who
//! sent what without trusting anything else in the frame. With
//! authentication on, a message's `from` must be its sender's user
//! (`chat-SENDER`, the token's `sub`).
//!
//! The scenario steers the clients through a `watch` of [`Order`]s; a
//! client that ends by itself (the server drains it) keeps its record.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use warmgate_loadgen::report::{ChatDrain, ChatSummary, DeliveryProblem, JoinFailure};

use crate::client::{self, Refused, Target, Ws};
use crate::clock::Clock;
use crate::stats;
use crate::tokens::{Credential, Tokens};

/// At most this many of a client's messages await their ack; the client
/// skips a beat rather than pile up more.
const MAX_IN_FLIGHT: usize = 8;

/// How long a client may take to be admitted and to join its room.
const JOIN_WAIT: Duration = Duration::from_secs(30);

/// How long the server may take to answer a client's close.
const LEAVE_WAIT: Duration = Duration::from_secs(3);

/// How long a finishing client waits for every member's last message.
const FIN_WAIT: Duration = Duration::from_secs(10);

/// The pace of prefill messages: 16 a second, under the gate's default
/// limit of 20 a second per connection.
pub(crate) const PREFILL_PERIOD: Duration = Duration::from_millis(62);

/// The text of a client's last message.
const FIN: &str = "fin";

/// How many individual problems are listed (all are counted).
const LISTED: usize = 50;

/// What the scenario tells every chat client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// Send a message every interval.
    Chat,
    /// Send this many messages, one every [`PREFILL_PERIOD`] (below the
    /// gate's default rate limit), then report [`ChatEvent::Prefilled`].
    Prefill { messages: usize },
    /// Stop sending; report [`ChatEvent::Quiet`] once every message sent
    /// is acked.
    Quiet,
    /// Send a last message (`fin`) and leave once every member's last
    /// message has come: the room's channel is in order, so everything
    /// published before them has arrived.
    Finish,
    /// Leave now.
    Abandon,
}

/// What a chat client tells the scenario as it goes.
#[derive(Debug)]
pub(crate) enum ChatEvent {
    Joined,
    Failed,
    Prefilled,
    Quiet,
}

/// The user name of chat client `index`: its token's `sub`.
pub(crate) fn user(index: usize) -> String {
    format!("chat-{index}")
}

/// The room of chat client `index`.
pub(crate) fn room(index: usize, rooms: usize) -> String {
    format!("room-{}", index % rooms.max(1))
}

#[derive(Debug)]
struct Sent {
    sent_at: Instant,
    acked_at: Option<Instant>,
}

/// Everything one chat client saw.
#[derive(Debug)]
pub(crate) struct ChatRecord {
    index: usize,
    room: String,
    /// Why the client never joined, if it did not.
    failure: Option<String>,
    joined_at: Option<Instant>,
    /// When the client stopped being a member: it started to leave, or the
    /// connection ended, whichever came first.
    ended_at: Option<Instant>,
    sent: Vec<Sent>,
    /// Sender index → how many times each of its messages (by seq) arrived.
    received: HashMap<usize, Vec<u8>>,
    /// The members whose last message (`fin`) has arrived.
    fins: HashSet<usize>,
    foreign: u64,
    wrong_from: u64,
    stray_acks: u64,
    repeated_acks: u64,
    error_frames: Vec<String>,
    readiness: Vec<String>,
    draining_at: Option<Instant>,
    close_code: Option<u16>,
    closed_at: Option<Instant>,
    /// How the connection ended, in words.
    end: Option<String>,
}

impl ChatRecord {
    fn new(index: usize, room: String) -> ChatRecord {
        ChatRecord {
            index,
            room,
            failure: None,
            joined_at: None,
            ended_at: None,
            sent: Vec::new(),
            received: HashMap::new(),
            fins: HashSet::new(),
            foreign: 0,
            wrong_from: 0,
            stray_acks: 0,
            repeated_acks: 0,
            error_frames: Vec::new(),
            readiness: Vec::new(),
            draining_at: None,
            close_code: None,
            closed_at: None,
            end: None,
        }
    }

    fn in_flight(&self) -> usize {
        self.sent
            .iter()
            .filter(|sent| sent.acked_at.is_none())
            .count()
    }

    fn mark_ended(&mut self, why: String) {
        let now = Instant::now();
        self.ended_at.get_or_insert(now);
        self.end.get_or_insert(why);
    }
}

/// The settings every chat client shares.
#[derive(Debug)]
pub(crate) struct ChatSettings {
    pub(crate) target: Target,
    /// How many chat clients there are (with the rooms, who is in which).
    pub(crate) clients: usize,
    pub(crate) rooms: usize,
    pub(crate) message_interval: Duration,
    /// Checks `from` against the sender's user when authentication is on.
    pub(crate) check_from: bool,
}

impl ChatSettings {
    /// How many chat clients share client `index`'s room.
    fn room_size(&self, index: usize) -> usize {
        let rooms = self.rooms.max(1);
        (0..self.clients)
            .filter(|other| other % rooms == index % rooms)
            .count()
    }
}

/// Starts `clients` chat clients; each reports on `events` and returns its
/// record when it ends.
pub(crate) fn spawn_clients(
    clients: usize,
    settings: &Arc<ChatSettings>,
    tokens: &Tokens,
    orders: &watch::Receiver<Order>,
    events: &mpsc::UnboundedSender<ChatEvent>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<ChatRecord>>> {
    let mut tasks = Vec::with_capacity(clients);
    for index in 0..clients {
        let token = tokens.token(Credential::Good, &user(index))?;
        let settings = Arc::clone(settings);
        let orders = orders.clone();
        let events = events.clone();
        tasks.push(tokio::spawn(async move {
            run_client(index, &settings, token, orders, events).await
        }));
    }
    Ok(tasks)
}

async fn run_client(
    index: usize,
    settings: &ChatSettings,
    token: Option<String>,
    mut orders: watch::Receiver<Order>,
    events: mpsc::UnboundedSender<ChatEvent>,
) -> ChatRecord {
    let mut record = ChatRecord::new(index, room(index, settings.rooms));
    let ws = match tokio::time::timeout(JOIN_WAIT, join(&mut record, settings, token.as_deref()))
        .await
    {
        Ok(Ok(ws)) => ws,
        Ok(Err(error)) => {
            record.failure = Some(error);
            let _ = events.send(ChatEvent::Failed);
            return record;
        }
        Err(_) => {
            record.failure = Some(format!(
                "not admitted and joined within {} s",
                JOIN_WAIT.as_secs()
            ));
            let _ = events.send(ChatEvent::Failed);
            return record;
        }
    };
    let _ = events.send(ChatEvent::Joined);
    converse(&mut record, settings, ws, &mut orders, &events).await;
    record
}

/// Connects, waits for `ready`, joins the room and waits for `joined`.
async fn join(
    record: &mut ChatRecord,
    settings: &ChatSettings,
    token: Option<&str>,
) -> Result<Ws, String> {
    let mut ws = match client::connect_as(&settings.target, token).await {
        Ok(ws) => ws,
        Err(Refused::Http { status, body }) => {
            return Err(format!("refused with HTTP {status}: {body}"));
        }
        Err(Refused::NoConnection(error) | Refused::Broken(error)) => return Err(error),
    };
    loop {
        let frame = next_json(&mut ws).await?;
        match frame["type"].as_str().unwrap_or_default() {
            "ready" => break,
            "warming" => {}
            other => return Err(format!("expected `ready`, got `{other}`: {frame}")),
        }
    }
    let join = json!({ "type": "join", "room": record.room }).to_string();
    ws.send(Message::text(join))
        .await
        .map_err(|error| error.to_string())?;
    loop {
        let frame = next_json(&mut ws).await?;
        if frame["type"] == "joined" {
            record.joined_at = Some(Instant::now());
            return Ok(ws);
        }
    }
}

async fn next_json(ws: &mut Ws) -> Result<Value, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(&text)
                    .map_err(|error| format!("not JSON ({error}): {text}"));
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(format!("closed by the server: {frame:?}"));
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(error.to_string()),
            None => return Err("the connection ended".to_owned()),
        }
    }
}

/// Chats until the server ends the connection or the scenario says to
/// leave.
async fn converse(
    record: &mut ChatRecord,
    settings: &ChatSettings,
    ws: Ws,
    orders: &mut watch::Receiver<Order>,
    events: &mpsc::UnboundedSender<ChatEvent>,
) {
    let (mut sink, mut stream) = ws.split();
    // Clients start their beat at random offsets, so sends spread out.
    let offset = settings.message_interval.mul_f64(fastrand::f64());
    let mut beat = tokio::time::interval_at(
        tokio::time::Instant::now() + offset,
        settings.message_interval,
    );
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prefill_beat = tokio::time::interval(PREFILL_PERIOD);
    prefill_beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let room_size = settings.room_size(record.index);
    // Not marked seen: an order given between this client's `joined` and
    // now still wakes `changed` below, which carries it out.
    let mut order = *orders.borrow();
    let mut prefill_left = 0_usize;
    let mut quiet_reported = false;
    // Sent its last message; waits for every member's last one.
    let mut finishing = false;
    // Sent its close; waits for the server's.
    let mut leaving = false;
    let deadline = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(deadline);
    loop {
        let open = record.draining_at.is_none() && !leaving && !finishing;
        let sending = open && order == Order::Chat;
        let prefilling = open && prefill_left > 0;
        tokio::select! {
            message = stream.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    on_text(record, settings, &text);
                    if order == Order::Quiet && !quiet_reported && record.in_flight() == 0 {
                        quiet_reported = true;
                        let _ = events.send(ChatEvent::Quiet);
                    }
                    if finishing && !leaving && record.fins.len() >= room_size {
                        leaving = true;
                        record.mark_ended("left once every member's last message had come".to_owned());
                        let _ = sink.send(Message::Close(None)).await;
                        deadline.as_mut().reset(tokio::time::Instant::now() + LEAVE_WAIT);
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    record.close_code = frame.as_ref().map(|frame| u16::from(frame.code));
                    record.closed_at = Some(Instant::now());
                    let why = match record.close_code {
                        Some(code) => format!("closed with {code}"),
                        None => "closed without a code".to_owned(),
                    };
                    record.mark_ended(why);
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    record.mark_ended(format!("connection error: {error}"));
                    break;
                }
                None => {
                    record.mark_ended("the connection ended".to_owned());
                    break;
                }
            },
            _ = beat.tick(), if sending => {
                if record.in_flight() < MAX_IN_FLIGHT {
                    let seq = record.sent.len();
                    if send_chat(&mut sink, record, seq, "hello").await.is_err() {
                        record.mark_ended("cannot send".to_owned());
                        break;
                    }
                }
            }
            _ = prefill_beat.tick(), if prefilling => {
                if record.in_flight() < MAX_IN_FLIGHT {
                    let seq = record.sent.len();
                    if send_chat(&mut sink, record, seq, "prefill").await.is_err() {
                        record.mark_ended("cannot send".to_owned());
                        break;
                    }
                    prefill_left -= 1;
                    if prefill_left == 0 {
                        let _ = events.send(ChatEvent::Prefilled);
                    }
                }
            }
            () = &mut deadline, if leaving || finishing => {
                if leaving {
                    record.end = Some(format!(
                        "{} (the server did not answer our close)",
                        record.end.as_deref().unwrap_or("left")
                    ));
                    break;
                }
                leaving = true;
                record.mark_ended(format!(
                    "left after {} s with the last message of only {} of {room_size} members",
                    FIN_WAIT.as_secs(),
                    record.fins.len()
                ));
                let _ = sink.send(Message::Close(None)).await;
                deadline.as_mut().reset(tokio::time::Instant::now() + LEAVE_WAIT);
            }
            changed = orders.changed(), if !leaving && !finishing => {
                order = if changed.is_err() { Order::Abandon } else { *orders.borrow_and_update() };
                match order {
                    Order::Chat => {}
                    Order::Prefill { messages } => {
                        prefill_left = messages;
                        if messages == 0 {
                            let _ = events.send(ChatEvent::Prefilled);
                        }
                    }
                    Order::Quiet => {
                        if !quiet_reported && record.in_flight() == 0 {
                            quiet_reported = true;
                            let _ = events.send(ChatEvent::Quiet);
                        }
                    }
                    Order::Finish => {
                        let seq = record.sent.len();
                        if send_chat(&mut sink, record, seq, FIN).await.is_err() {
                            record.mark_ended("cannot send".to_owned());
                            break;
                        }
                        finishing = true;
                        deadline.as_mut().reset(tokio::time::Instant::now() + FIN_WAIT);
                    }
                    Order::Abandon => {
                        leaving = true;
                        record.mark_ended("left when the run ended".to_owned());
                        let _ = sink.send(Message::Close(None)).await;
                        deadline.as_mut().reset(tokio::time::Instant::now() + LEAVE_WAIT);
                    }
                }
            }
        }
    }
}

async fn send_chat(
    sink: &mut futures_util::stream::SplitSink<Ws, Message>,
    record: &mut ChatRecord,
    seq: usize,
    text: &str,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let frame = json!({
        "type": "chat",
        "room": record.room,
        "text": text,
        "client_msg_id": format!("{}.{seq}", record.index),
    })
    .to_string();
    record.sent.push(Sent {
        sent_at: Instant::now(),
        acked_at: None,
    });
    sink.send(Message::text(frame)).await
}

/// Records one frame.
fn on_text(record: &mut ChatRecord, settings: &ChatSettings, text: &str) {
    let Ok(frame) = serde_json::from_str::<Value>(text) else {
        record.error_frames.push(format!("not JSON: {text}"));
        return;
    };
    match frame["type"].as_str().unwrap_or_default() {
        "chat" => {
            let Some((sender, seq)) = frame["client_msg_id"].as_str().and_then(parse_message_id)
            else {
                record.foreign += 1;
                return;
            };
            if frame["room"].as_str() != Some(record.room.as_str()) {
                record.foreign += 1;
                return;
            }
            if settings.check_from && frame["from"].as_str() != Some(user(sender).as_str()) {
                record.wrong_from += 1;
            }
            let counts = record.received.entry(sender).or_default();
            if counts.len() <= seq {
                counts.resize(seq + 1, 0);
            }
            counts[seq] = counts[seq].saturating_add(1);
            if frame["text"] == FIN {
                record.fins.insert(sender);
            }
        }
        "ack" => {
            let own = frame["client_msg_id"]
                .as_str()
                .and_then(parse_message_id)
                .filter(|(sender, _)| *sender == record.index);
            match own.and_then(|(_, seq)| record.sent.get_mut(seq)) {
                Some(sent) if sent.acked_at.is_none() => sent.acked_at = Some(Instant::now()),
                Some(_) => record.repeated_acks += 1,
                None => record.stray_acks += 1,
            }
        }
        "readiness" => {
            record
                .readiness
                .push(frame["state"].as_str().unwrap_or("?").to_owned());
        }
        "draining" => {
            record.draining_at.get_or_insert_with(Instant::now);
        }
        "error" => {
            record.error_frames.push(format!(
                "{}: {}",
                frame["code"].as_str().unwrap_or("?"),
                frame["message"].as_str().unwrap_or("?")
            ));
        }
        _ => {}
    }
}

/// `SENDER.SEQ`.
fn parse_message_id(id: &str) -> Option<(usize, usize)> {
    let (sender, seq) = id.split_once('.')?;
    Some((sender.parse().ok()?, seq.parse().ok()?))
}

/// The delivery check and the chat figures, over every client's record.
pub(crate) fn summarise(records: &[ChatRecord], clock: Clock) -> ChatSummary {
    let mut by_room: BTreeMap<&str, Vec<&ChatRecord>> = BTreeMap::new();
    for record in records {
        by_room
            .entry(record.room.as_str())
            .or_default()
            .push(record);
    }
    let mut sent = 0_u64;
    let mut acked = 0_u64;
    let mut required = 0_u64;
    let mut delivered_once = 0_u64;
    let mut missing = 0_u64;
    let mut duplicated = 0_u64;
    let mut samples = Vec::new();
    let mut ack_latencies = Vec::new();
    for members in by_room.values() {
        for sender in members {
            for (seq, message) in sender.sent.iter().enumerate() {
                sent += 1;
                if let Some(acked_at) = message.acked_at {
                    acked += 1;
                    ack_latencies.push(acked_at - message.sent_at);
                }
                for member in members {
                    let count = member
                        .received
                        .get(&sender.index)
                        .and_then(|counts| counts.get(seq))
                        .copied()
                        .unwrap_or(0);
                    if count > 1 {
                        duplicated += 1;
                        if samples.len() < LISTED {
                            samples.push(DeliveryProblem::Duplicated {
                                message: format!("{}.{seq}", sender.index),
                                member: member.index,
                                count,
                            });
                        }
                    }
                    let Some(acked_at) = message.acked_at else {
                        continue;
                    };
                    let connected_throughout = member
                        .joined_at
                        .is_some_and(|joined| joined <= message.sent_at)
                        && member.ended_at.is_none_or(|ended| ended >= acked_at);
                    if !connected_throughout {
                        continue;
                    }
                    required += 1;
                    match count {
                        1 => delivered_once += 1,
                        0 => {
                            missing += 1;
                            if samples.len() < LISTED {
                                samples.push(DeliveryProblem::Missing {
                                    message: format!("{}.{seq}", sender.index),
                                    member: member.index,
                                    sent_ms: clock.unix_ms(message.sent_at),
                                    acked_ms: clock.unix_ms(acked_at),
                                });
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    // Deliveries of messages no client sent.
    let mut unknown = 0_u64;
    for record in records {
        for (sender, counts) in &record.received {
            let known = records
                .iter()
                .find(|other| other.index == *sender)
                .map_or(0, |other| other.sent.len());
            unknown += counts
                .iter()
                .skip(known)
                .map(|&count| u64::from(count))
                .sum::<u64>();
        }
    }
    let joined = records
        .iter()
        .filter(|record| record.joined_at.is_some())
        .count();
    let join_failures: Vec<JoinFailure> = records
        .iter()
        .filter_map(|record| {
            record.failure.as_ref().map(|why| JoinFailure {
                client: record.index,
                why: why.clone(),
            })
        })
        .take(LISTED)
        .collect();
    let mut ends = BTreeMap::<String, u64>::new();
    for record in records.iter().filter(|record| record.joined_at.is_some()) {
        *ends
            .entry(
                record
                    .end
                    .clone()
                    .unwrap_or_else(|| "still connected".to_owned()),
            )
            .or_default() += 1;
    }
    let mut error_frames = BTreeMap::<String, u64>::new();
    for record in records {
        for error in &record.error_frames {
            let code = error.split(':').next().unwrap_or_default().to_owned();
            *error_frames.entry(code).or_default() += 1;
        }
    }
    let mut readiness = BTreeMap::<String, u64>::new();
    for record in records.iter().filter(|record| record.joined_at.is_some()) {
        *readiness.entry(record.readiness.join(",")).or_default() += 1;
    }
    let drained: Vec<&ChatRecord> = records
        .iter()
        .filter(|record| record.draining_at.is_some())
        .collect();
    let mut draining_to_close: Vec<Duration> = drained
        .iter()
        .filter_map(|record| Some(record.closed_at? - record.draining_at?))
        .collect();
    let mut close_codes = BTreeMap::<String, u64>::new();
    for record in &drained {
        let code = record
            .close_code
            .map_or_else(|| "none".to_owned(), |code| code.to_string());
        *close_codes.entry(code).or_default() += 1;
    }
    ChatSummary {
        clients: records.len(),
        rooms: by_room.len(),
        joined,
        join_failures,
        messages_sent: sent,
        messages_acked: acked,
        ack_latency: stats::summary(&mut ack_latencies),
        deliveries_required: required,
        delivered_once,
        missing,
        duplicated,
        unknown_deliveries: unknown,
        foreign_frames: records.iter().map(|record| record.foreign).sum(),
        wrong_from: records.iter().map(|record| record.wrong_from).sum(),
        stray_acks: records.iter().map(|record| record.stray_acks).sum(),
        repeated_acks: records.iter().map(|record| record.repeated_acks).sum(),
        problems: samples,
        error_frames,
        ends,
        readiness_pushes: readiness,
        drain: ChatDrain {
            told_draining: drained.len(),
            first_draining_ms: drained
                .iter()
                .filter_map(|record| record.draining_at)
                .min()
                .map(|at| clock.unix_ms(at)),
            last_closed_ms: drained
                .iter()
                .filter_map(|record| record.closed_at)
                .max()
                .map(|at| clock.unix_ms(at)),
            close_codes,
            draining_to_close: stats::summary(&mut draining_to_close),
        },
    }
}
