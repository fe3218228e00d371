//! The database: users, sign-in tokens, chats, their members and messages, in one SQLite file.
//!
//! One connection behind a mutex is plenty for an example; every query is short.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id        INTEGER PRIMARY KEY,
    name      TEXT NOT NULL,
    last_seen INTEGER                  -- unix ms, NULL = never
);
CREATE TABLE IF NOT EXISTS sessions (
    token      TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chats (
    id INTEGER PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS chat_members (
    chat_id      INTEGER NOT NULL REFERENCES chats(id),
    user_id      INTEGER NOT NULL REFERENCES users(id),
    last_read_id INTEGER NOT NULL DEFAULT 0,   -- newest message this member has seen
    PRIMARY KEY (chat_id, user_id)
);
CREATE TABLE IF NOT EXISTS messages (
    id              INTEGER PRIMARY KEY,
    chat_id         INTEGER NOT NULL REFERENCES chats(id),
    user_id         INTEGER NOT NULL REFERENCES users(id),
    body            TEXT NOT NULL,
    attachment_name TEXT,              -- the name the sender's file had
    attachment_file TEXT,              -- random name in the uploads directory
    attachment_size INTEGER,
    created_at      INTEGER NOT NULL   -- unix ms
);
CREATE INDEX IF NOT EXISTS messages_by_chat ON messages(chat_id, id);
";

/// Demo users and their one-to-one chats, created when the database is new.
const SEED: &str = "
INSERT INTO users (id, name, last_seen) VALUES
    (1, 'Ana', (unixepoch() - 20 * 3600) * 1000),
    (2, 'Bruno', (unixepoch() - 90 * 60) * 1000),
    (3, 'Carla', (unixepoch() - 2 * 3600) * 1000);
INSERT INTO chats (id) VALUES (1), (2), (3);
INSERT INTO chat_members (chat_id, user_id) VALUES (1, 1), (1, 2), (2, 1), (2, 3), (3, 2), (3, 3);
INSERT INTO messages (chat_id, user_id, body, created_at) VALUES
    (2, 3, 'Hi Ana! Are we still on for Friday?', (unixepoch() - 26 * 3600) * 1000),
    (2, 1, 'Yes, 10 am at the office. See you there!', (unixepoch() - 25 * 3600) * 1000),
    (3, 2, 'Carla, could you send me the slides from today?', (unixepoch() - 3 * 3600) * 1000),
    (3, 3, 'Sure, I will attach them here tonight.', (unixepoch() - 2 * 3600) * 1000);
UPDATE chat_members SET last_read_id =
    (SELECT COALESCE(MAX(id), 0) FROM messages WHERE messages.chat_id = chat_members.chat_id);
";

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub last_seen: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Attachment {
    pub name: String,
    pub size: i64,
    /// Download link; the file is served only with the bearer token of one of the chat's members.
    pub url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub id: i64,
    pub chat_id: i64,
    pub user_id: i64,
    pub body: String,
    pub attachment: Option<Attachment>,
    pub created_at: i64,
}

#[derive(Debug, Serialize)]
pub struct Member {
    pub id: i64,
    pub name: String,
    pub last_read_id: i64,
}

/// A chat as the chat list shows it, from one member's point of view.
#[derive(Debug, Serialize)]
pub struct ChatSummary {
    pub id: i64,
    pub other: User,
    pub last_message: Option<Message>,
    pub unread: i64,
}

/// A file stored with a new message.
pub struct NewAttachment {
    pub name: String,
    pub file: String,
    pub size: i64,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

type Result<T> = rusqlite::Result<T>;

pub struct Db(Mutex<Connection>);

const MESSAGE_COLUMNS: &str =
    "id, chat_id, user_id, body, attachment_name, attachment_file, attachment_size, created_at";

fn message_from_row(row: &Row) -> Result<Message> {
    let name: Option<String> = row.get(4)?;
    let file: Option<String> = row.get(5)?;
    let attachment = match (name, file) {
        (Some(name), Some(file)) => Some(Attachment {
            name,
            size: row.get::<_, Option<i64>>(6)?.unwrap_or(0),
            url: format!("/api/files/{file}"),
        }),
        _ => None,
    };
    Ok(Message {
        id: row.get(0)?,
        chat_id: row.get(1)?,
        user_id: row.get(2)?,
        body: row.get(3)?,
        attachment,
        created_at: row.get(7)?,
    })
}

fn user_from_row(row: &Row) -> Result<User> {
    Ok(User {
        id: row.get(0)?,
        name: row.get(1)?,
        last_seen: row.get(2)?,
    })
}

impl Db {
    /// Opens (or creates and seeds) the database file.
    pub fn open(path: &Path) -> Result<Db> {
        let conn = Connection::open(path)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;")?;
        conn.execute_batch(SCHEMA)?;
        let users: i64 = conn.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?;
        if users == 0 {
            conn.execute_batch(SEED)?;
        }
        Ok(Db(Mutex::new(conn)))
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent: keep going.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn users(&self) -> Result<Vec<User>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id, name, last_seen FROM users ORDER BY name")?;
        let users = stmt.query_map([], user_from_row)?.collect();
        users
    }

    pub fn user(&self, id: i64) -> Result<Option<User>> {
        self.conn()
            .query_row(
                "SELECT id, name, last_seen FROM users WHERE id = ?1",
                [id],
                user_from_row,
            )
            .optional()
    }

    pub fn create_session(&self, user_id: i64) -> Result<String> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        self.conn().execute(
            "INSERT INTO sessions (token, user_id, created_at) VALUES (?1, ?2, ?3)",
            params![token, user_id, now_ms()],
        )?;
        Ok(token)
    }

    pub fn session_user(&self, token: &str) -> Result<Option<User>> {
        self.conn()
            .query_row(
                "SELECT u.id, u.name, u.last_seen FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token = ?1",
                [token],
                user_from_row,
            )
            .optional()
    }

    pub fn delete_session(&self, token: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM sessions WHERE token = ?1", [token])?;
        Ok(())
    }

    /// Records that these users were seen now.
    pub fn touch(&self, user_ids: &[i64]) -> Result<()> {
        let conn = self.conn();
        let mut stmt = conn.prepare("UPDATE users SET last_seen = ?1 WHERE id = ?2")?;
        let now = now_ms();
        for id in user_ids {
            stmt.execute(params![now, id])?;
        }
        Ok(())
    }

    pub fn is_member(&self, chat_id: i64, user_id: i64) -> Result<bool> {
        self.conn().query_row(
            "SELECT EXISTS (SELECT 1 FROM chat_members WHERE chat_id = ?1 AND user_id = ?2)",
            [chat_id, user_id],
            |r| r.get(0),
        )
    }

    pub fn members(&self, chat_id: i64) -> Result<Vec<Member>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT u.id, u.name, m.last_read_id FROM chat_members m JOIN users u ON u.id = m.user_id
             WHERE m.chat_id = ?1 ORDER BY u.id",
        )?;
        let members = stmt
            .query_map([chat_id], |r| {
                Ok(Member {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    last_read_id: r.get(2)?,
                })
            })?
            .collect();
        members
    }

    /// The user's chats, the most recently active first.
    pub fn chats_of(&self, user_id: i64) -> Result<Vec<ChatSummary>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT m.chat_id, m.last_read_id, u.id, u.name, u.last_seen
             FROM chat_members m
             JOIN chat_members o ON o.chat_id = m.chat_id AND o.user_id != m.user_id
             JOIN users u ON u.id = o.user_id
             WHERE m.user_id = ?1",
        )?;
        let rows: Vec<(i64, i64, User)> = stmt
            .query_map([user_id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    User {
                        id: r.get(2)?,
                        name: r.get(3)?,
                        last_seen: r.get(4)?,
                    },
                ))
            })?
            .collect::<Result<_>>()?;
        let mut last = conn.prepare(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id = ?1 ORDER BY id DESC LIMIT 1"
        ))?;
        let mut unread = conn.prepare(
            "SELECT COUNT(*) FROM messages WHERE chat_id = ?1 AND id > ?2 AND user_id != ?3",
        )?;
        let mut chats = Vec::new();
        for (chat_id, last_read_id, other) in rows {
            chats.push(ChatSummary {
                id: chat_id,
                other,
                last_message: last.query_row([chat_id], message_from_row).optional()?,
                unread: unread.query_row(params![chat_id, last_read_id, user_id], |r| r.get(0))?,
            });
        }
        chats.sort_by_key(|c| std::cmp::Reverse(c.last_message.as_ref().map_or(0, |m| m.id)));
        Ok(chats)
    }

    /// The newest `limit` messages of a chat, oldest first.
    pub fn messages(&self, chat_id: i64, limit: i64) -> Result<Vec<Message>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT * FROM (SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id = ?1
             ORDER BY id DESC LIMIT ?2) ORDER BY id"
        ))?;
        let messages = stmt
            .query_map([chat_id, limit], message_from_row)?
            .collect();
        messages
    }

    pub fn insert_message(
        &self,
        chat_id: i64,
        user_id: i64,
        body: &str,
        attachment: Option<NewAttachment>,
    ) -> Result<Message> {
        let conn = self.conn();
        let (name, file, size) = match attachment {
            Some(a) => (Some(a.name), Some(a.file), Some(a.size)),
            None => (None, None, None),
        };
        conn.execute(
            "INSERT INTO messages (chat_id, user_id, body, attachment_name, attachment_file,
             attachment_size, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![chat_id, user_id, body, name, file, size, now_ms()],
        )?;
        let id = conn.last_insert_rowid();
        // The sender has seen their own message.
        conn.execute(
            "UPDATE chat_members SET last_read_id = ?1 WHERE chat_id = ?2 AND user_id = ?3",
            params![id, chat_id, user_id],
        )?;
        conn.query_row(
            &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"),
            [id],
            message_from_row,
        )
    }

    /// Moves the member's read marker forward to `message_id` (never back). Returns the new
    /// marker when it moved.
    pub fn mark_read(&self, chat_id: i64, user_id: i64, message_id: i64) -> Result<Option<i64>> {
        let conn = self.conn();
        let changed = conn.execute(
            "UPDATE chat_members SET last_read_id = ?3
             WHERE chat_id = ?1 AND user_id = ?2 AND last_read_id < ?3
               AND EXISTS (SELECT 1 FROM messages WHERE chat_id = ?1 AND id = ?3)",
            params![chat_id, user_id, message_id],
        )?;
        Ok((changed > 0).then_some(message_id))
    }

    /// A stored file's original name and the chat it was sent in.
    pub fn attachment(&self, file: &str) -> Result<Option<(String, i64)>> {
        self.conn()
            .query_row(
                "SELECT attachment_name, chat_id FROM messages WHERE attachment_file = ?1",
                [file],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
    }
}
