//! Unit tests of `rooms`.

use super::*;

fn anonymous(name: &str) -> ChatSender<'_> {
    ChatSender {
        name,
        authenticated: false,
    }
}

fn user(name: &str) -> ChatSender<'_> {
    ChatSender {
        name,
        authenticated: true,
    }
}

#[test]
fn an_authenticated_sender_cannot_suppress_another_ones_message_by_reusing_its_id() {
    let rooms = InProcessRooms::new();
    let mut member = rooms.join("lobby");
    assert!(
        !rooms
            .publish("lobby", user("mallory"), "first", Some("c-1"))
            .duplicate
    );
    assert!(
        !rooms
            .publish("lobby", user("ada"), "mine", Some("c-1"))
            .duplicate
    );
    assert!(
        rooms
            .publish("lobby", user("ada"), "mine", Some("c-1"))
            .duplicate
    );
    assert!(member.try_recv().unwrap().contains("first"));
    assert!(member.try_recv().unwrap().contains("mine"));
    assert!(member.try_recv().is_err());
}

#[test]
fn a_resent_message_is_acked_with_the_first_id_and_delivered_once() {
    let rooms = InProcessRooms::new();
    let mut member = rooms.join("lobby");
    let first = rooms.publish("lobby", anonymous("c1"), "hi", Some("c-1"));
    assert!(!first.duplicate);
    let again = rooms.publish("lobby", anonymous("c2"), "hi", Some("c-1"));
    assert_eq!(
        again,
        PublishedChat {
            id: first.id.clone(),
            duplicate: true
        }
    );
    let frame = member.try_recv().unwrap();
    assert!(frame.contains("\"client_msg_id\":\"c-1\""), "{frame}");
    assert!(member.try_recv().is_err(), "delivered once");
    // Without an id nothing is deduplicated, and other rooms are apart.
    assert!(
        !rooms
            .publish("lobby", anonymous("c1"), "hi", None)
            .duplicate
    );
    assert!(
        !rooms
            .publish("lobby", anonymous("c1"), "hi", None)
            .duplicate
    );
    assert!(
        !rooms
            .publish("ops", anonymous("c1"), "hi", Some("c-1"))
            .duplicate
    );
}

#[test]
fn a_room_forgets_the_oldest_ids_past_its_window() {
    let rooms = InProcessRooms::new();
    let _member = rooms.join("lobby");
    for n in 0..=RECENT_IDS_PER_ROOM {
        rooms.publish("lobby", anonymous("c1"), "x", Some(&format!("c-{n}")));
    }
    assert!(
        !rooms
            .publish("lobby", anonymous("c1"), "x", Some("c-0"))
            .duplicate
    );
    assert!(
        rooms
            .publish(
                "lobby",
                anonymous("c1"),
                "x",
                Some(&format!("c-{RECENT_IDS_PER_ROOM}"))
            )
            .duplicate
    );
}
