//! Read marks (`chat_read_marks`): how far each user has read each room.

use sqlx::PgExecutor;

use crate::domain::RoomId;

/// A user's mark in a room, and what is unread after it.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct Mark {
    pub last_read_seq: i64,
    pub unread: i64,
}

/// Moves user `$2`'s mark in room `$1` forward to seq `$3` (clamped to the room's
/// `last_seq`; a lower seq leaves it), if they may see the room; answers the mark and the
/// unread count after it, computed as in `rooms::LIST_ROOMS`. No row for a room they may
/// not see. The mark's `updated_at` moves only when the mark does: the stream hub tells the
/// user's other streams (`rooms::TICK`).
pub const MARK_READ: &str = r#"
    WITH room AS (
        SELECT r.id, r.last_seq FROM chat_rooms r
        WHERE r.id = $1
          AND (r.visibility = 'public' OR r.created_by = $2
               OR EXISTS (SELECT 1 FROM chat_room_members mm
                          WHERE mm.room_id = r.id AND mm.user_email = $2))
    ), moved AS (
        INSERT INTO chat_read_marks AS k (room_id, user_email, last_read_seq)
        SELECT room.id, $2, LEAST($3, room.last_seq) FROM room
        ON CONFLICT (room_id, user_email) DO UPDATE
        SET last_read_seq = EXCLUDED.last_read_seq, updated_at = now()
        WHERE k.last_read_seq < EXCLUDED.last_read_seq
        RETURNING k.last_read_seq
    ), mark AS (
        SELECT room.last_seq,
               COALESCE((SELECT last_read_seq FROM moved),
                        (SELECT k.last_read_seq FROM chat_read_marks k
                         WHERE k.room_id = $1 AND k.user_email = $2), 0) AS last_read_seq
        FROM room
    )
    SELECT mark.last_read_seq,
           GREATEST(0, mark.last_seq - mark.last_read_seq
                       - (SELECT count(*) FROM chat_messages d
                          WHERE d.room_id = $1 AND d.seq > mark.last_read_seq
                            AND d.deleted_at IS NOT NULL)) AS unread
    FROM mark
"#;

/// Moves `user`'s mark in `room` forward to `seq`; `None` when they may not see the room.
pub async fn mark_read(
    db: impl PgExecutor<'_>,
    room: &RoomId,
    user: &str,
    seq: i64,
) -> sqlx::Result<Option<Mark>> {
    sqlx::query_as(MARK_READ)
        .bind(room.as_str())
        .bind(user)
        .bind(seq)
        .fetch_optional(db)
        .await
}
