"""Numbered, append-only schema migrations.

Each `mNNN_*` function runs once, inside its own transaction, and is recorded in
`migrations`. A migration that has shipped is never edited: fix forward with a new one.
The vector table is not here: its width depends on the embedding model, so the store
creates (and re-creates on a model change) it from `engine.vault.vectors`.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import apsw


def m001_memories(conn: apsw.Connection) -> None:
    conn.execute("""
    CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE memories(
        rowid INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        memory TEXT NOT NULL,
        key TEXT NOT NULL DEFAULT '',
        tags TEXT NOT NULL DEFAULT '[]',
        memory_type TEXT NOT NULL,
        status TEXT NOT NULL,
        confidence REAL NOT NULL DEFAULT 1.0,
        source TEXT NOT NULL,
        sources TEXT NOT NULL DEFAULT '[]',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        event_time REAL,
        event_end REAL,
        expires REAL,
        priority INTEGER NOT NULL DEFAULT 0,
        pinned INTEGER NOT NULL DEFAULT 0,
        visibility TEXT NOT NULL DEFAULT 'private',
        scope TEXT NOT NULL DEFAULT 'default',
        usage_count INTEGER NOT NULL DEFAULT 0,
        last_used_at REAL,
        version INTEGER NOT NULL DEFAULT 1,
        info TEXT NOT NULL DEFAULT '{}',
        content_hash TEXT NOT NULL,
        -- text the embedder sees when it differs from `memory` (e.g. a chat turn with its context)
        embed_text TEXT,
        -- fingerprint of the model that produced the stored vector; NULL = vector pending
        embed_fp TEXT
    );
    CREATE INDEX memories_hash ON memories(scope, content_hash);
    CREATE INDEX memories_status ON memories(status, memory_type);
    CREATE INDEX memories_event_time ON memories(event_time);
    CREATE INDEX memories_updated ON memories(updated_at);
    CREATE INDEX memories_pending ON memories(rowid) WHERE embed_fp IS NULL;

    CREATE TABLE memory_tags(
        tag TEXT NOT NULL,
        memory_rowid INTEGER NOT NULL REFERENCES memories(rowid) ON DELETE CASCADE,
        PRIMARY KEY(tag, memory_rowid)
    ) WITHOUT ROWID;
    CREATE INDEX memory_tags_rowid ON memory_tags(memory_rowid);

    CREATE TABLE memory_versions(
        memory_rowid INTEGER NOT NULL REFERENCES memories(rowid) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        changed_at REAL NOT NULL,
        reason TEXT NOT NULL,
        snapshot TEXT NOT NULL,
        PRIMARY KEY(memory_rowid, version)
    );

    CREATE TABLE edges(
        src TEXT NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
        dst TEXT NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
        relation TEXT NOT NULL,
        weight REAL NOT NULL DEFAULT 1.0,
        created_at REAL NOT NULL,
        PRIMARY KEY(src, dst, relation)
    );
    CREATE INDEX edges_dst ON edges(dst, relation);

    CREATE VIRTUAL TABLE memory_fts USING fts5(
        memory, key, tags, content='memories', content_rowid='rowid',
        tokenize='porter unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN
        INSERT INTO memory_fts(rowid, memory, key, tags) VALUES (new.rowid, new.memory, new.key, new.tags);
    END;
    CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN
        INSERT INTO memory_fts(memory_fts, rowid, memory, key, tags)
        VALUES ('delete', old.rowid, old.memory, old.key, old.tags);
    END;
    CREATE TRIGGER memories_fts_update AFTER UPDATE OF memory, key, tags ON memories BEGIN
        INSERT INTO memory_fts(memory_fts, rowid, memory, key, tags)
        VALUES ('delete', old.rowid, old.memory, old.key, old.tags);
        INSERT INTO memory_fts(rowid, memory, key, tags) VALUES (new.rowid, new.memory, new.key, new.tags);
    END;
    """)


def m002_sessions_and_jobs(conn: apsw.Connection) -> None:
    conn.execute("""
    CREATE TABLE sessions(
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE messages(
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        created_at REAL NOT NULL,
        -- the memories the model was given for this reply (provenance of the answer)
        memory_ids TEXT NOT NULL DEFAULT '[]',
        model TEXT,
        stats TEXT NOT NULL DEFAULT '{}',
        UNIQUE(session_id, seq)
    );
    CREATE TABLE jobs(
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        dedup_key TEXT,
        payload TEXT NOT NULL,
        status TEXT NOT NULL,  -- pending | running | done | failed | cancelled
        priority INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        progress REAL NOT NULL DEFAULT 0,
        error TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX jobs_pending ON jobs(status, priority DESC, id);
    CREATE INDEX memories_key ON memories(scope, key) WHERE key != '';
    CREATE UNIQUE INDEX jobs_dedup ON jobs(kind, dedup_key) WHERE dedup_key IS NOT NULL AND status IN ('pending', 'running');
    """)


def m003_kv_states(conn: apsw.Connection) -> None:
    # Activation memory: KV states of prompt prefixes, kept inside the encrypted vault.
    conn.execute("""
    CREATE TABLE kv_states(
        id INTEGER PRIMARY KEY,
        model_fp TEXT NOT NULL,
        backend TEXT NOT NULL,
        n_ctx INTEGER NOT NULL,
        prefix_hash TEXT NOT NULL,  -- sha256 of the exact prefix token ids
        n_tokens INTEGER NOT NULL,
        label TEXT NOT NULL DEFAULT '',
        state BLOB NOT NULL,
        state_hash TEXT NOT NULL,  -- sha256 of state: a damaged blob is never restored
        bytes INTEGER NOT NULL,
        created_at REAL NOT NULL,
        last_used_at REAL NOT NULL,
        UNIQUE(model_fp, n_ctx, prefix_hash)
    );
    CREATE INDEX kv_states_lru ON kv_states(last_used_at);
    CREATE TABLE kv_state_memories(
        memory_id TEXT NOT NULL,
        state_id INTEGER NOT NULL REFERENCES kv_states(id) ON DELETE CASCADE,
        PRIMARY KEY(memory_id, state_id)
    ) WITHOUT ROWID;
    """)


def m004_ingest_state(conn: apsw.Connection) -> None:
    # Watched-folder ingestion: what was read from each file, so a re-scan (or a restart)
    # only touches what changed. Written in the same transaction as the file's memories.
    conn.execute("""
    CREATE TABLE ingest_files(
        path TEXT PRIMARY KEY,  -- absolute path as found under a watched folder
        size INTEGER NOT NULL,  -- -1: retry on the next scan
        mtime_ns INTEGER NOT NULL,
        hashed_at_ns INTEGER NOT NULL DEFAULT 0,  -- when the content was last read (racy-stat guard)
        content_hash TEXT NOT NULL DEFAULT '',  -- sha256 of the bytes; '' if never read
        status TEXT NOT NULL,  -- ingested | skipped
        skip_reason TEXT,
        chunks INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL
    );
    CREATE INDEX ingest_files_hash ON ingest_files(content_hash);
    CREATE TABLE ingest_chunks(
        path TEXT NOT NULL REFERENCES ingest_files(path) ON DELETE CASCADE ON UPDATE CASCADE,
        seq INTEGER NOT NULL,
        chunk_hash TEXT NOT NULL,
        memory_id TEXT NOT NULL,
        start_line INTEGER NOT NULL,
        end_line INTEGER NOT NULL,
        PRIMARY KEY(path, seq)
    ) WITHOUT ROWID;
    CREATE INDEX ingest_chunks_memory ON ingest_chunks(memory_id);
    """)


def m005_listing_orders(conn: apsw.Connection) -> None:
    """One index per listing order, so a page of the memory browser walks an index (m001 has updated_at)."""
    conn.execute("""
    CREATE INDEX memories_created ON memories(created_at);
    CREATE INDEX memories_usage ON memories(usage_count);
    CREATE INDEX memories_priority ON memories(pinned, priority, updated_at);
    CREATE INDEX memories_when ON memories(COALESCE(event_time, created_at));
    """)


def m006_parametric(conn: apsw.Connection) -> None:
    """Parametric memory: the person's feedback on replies, the training datasets built from
    the store, and the adapters (their weights live here, encrypted with everything else)."""
    conn.execute("""
    CREATE TABLE feedback(
        message_id TEXT PRIMARY KEY,  -- the assistant message rated or edited
        session_id TEXT NOT NULL,
        rating INTEGER NOT NULL DEFAULT 0,  -- +1 thumbs up, -1 thumbs down, 0 none
        edited_text TEXT,  -- the person's preferred version of the reply
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE adapter_datasets(
        snapshot TEXT PRIMARY KEY,  -- sha256 of the canonical dataset JSON
        created_at REAL NOT NULL,
        sft INTEGER NOT NULL,
        dpo INTEGER NOT NULL,
        data TEXT NOT NULL  -- the examples, JSON
    );
    CREATE TABLE adapters(
        id TEXT PRIMARY KEY,
        base_fingerprint TEXT NOT NULL,  -- the chat model it was trained for
        base_name TEXT NOT NULL,
        trainer TEXT NOT NULL,  -- "torch" | "mlx"
        status TEXT NOT NULL,  -- training | candidate | active | retired | rejected | failed
        data_snapshot TEXT NOT NULL,
        config TEXT NOT NULL,  -- JSON: rank, alpha, steps, ...
        metrics TEXT NOT NULL DEFAULT '{}',  -- JSON: gate results, training time, loss
        created_at REAL NOT NULL,
        activated_at REAL,
        previous_id TEXT,  -- the adapter that was active before this one (what rollback returns to)
        gguf BLOB,  -- the llama.cpp LoRA (GGUF) when the base is a GGUF
        native BLOB,  -- the trainer's own adapter folder (peft or mlx), as a zip
        checkpoint BLOB,  -- a resumable training state while status = training
        size_bytes INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX adapters_base ON adapters(base_fingerprint, status);
    """)


def m007_turn_by_message(conn: apsw.Connection) -> None:
    """Find the raw chat turn of a message id (superseding a fact supersedes the turns that stated it)."""
    conn.execute("""
    CREATE INDEX memories_turn_message ON memories(json_extract(sources, '$[0].message_id'))
        WHERE memory_type = 'RawChatMemory';
    """)


def m008_fts_secure_delete(conn: apsw.Connection) -> None:
    """Deleting a memory removes its words from the keyword index at once, instead of leaving
    them in the index blocks (under a delete marker) until a merge rewrites them."""
    conn.execute("INSERT INTO memory_fts(memory_fts, rank) VALUES ('secure-delete', 1)")


MIGRATIONS: list[Callable[[apsw.Connection], None]] = [m001_memories, m002_sessions_and_jobs, m003_kv_states,
                                                       m004_ingest_state, m005_listing_orders, m006_parametric,
                                                       m007_turn_by_message, m008_fts_secure_delete]


def migrate(conn: apsw.Connection) -> list[str]:
    """Apply every migration not yet recorded; returns the names applied."""
    conn.execute("CREATE TABLE IF NOT EXISTS migrations(name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    done = {row[0] for row in conn.execute("SELECT name FROM migrations")}
    known = {m.__name__ for m in MIGRATIONS}
    unknown = done - known
    if unknown:
        from memdesk.engine.errors import CorruptStoreError

        raise CorruptStoreError(
            f"This vault was written by a newer MemDesk (migrations {sorted(unknown)}). "
            "Upgrade MemDesk to open it.")
    applied = []
    for migration in MIGRATIONS:
        if migration.__name__ in done:
            continue
        # IMMEDIATE, and checked again inside: another process opening the vault at the same
        # moment waits for this migration instead of failing, then finds it applied.
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("SELECT 1 FROM migrations WHERE name = ?", (migration.__name__,)).fetchone() is None:
                migration(conn)
                conn.execute("INSERT INTO migrations(name, applied_at) VALUES (?, ?)",
                             (migration.__name__, time.time()))
                applied.append(migration.__name__)
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
    return applied
