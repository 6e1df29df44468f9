/* proxy/session/session_classify.c: what a frontend message makes of the unit it joins (mirrored or
 * a read, routable, wrappable) and of the session's prepared statements and portals (recorded in
 * s->stmts, see stmt_track.h). A message never lowers the class of what came before it in its
 * unit. While pgdual's parse of a text may differ from the server's (lexing_unsure), every
 * statement is mirrored. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/dials.h"
#include "protocol/classify.h"
#include "protocol/classify_plain.h"
#include "protocol/pqproto.h"
#include "proxy/session/session.h"
#include "proxy/session/stmt_track.h"
#include "proxy/worker.h"

#define EFFECTS_MAX 16 /* SQL effects recorded one by one per Query; more drop everything */

/* ---- when pgdual's parse cannot be trusted ------------------------------------------------ */

/* With standard_conforming_strings off, a backslash escapes a quote in '...' literals; in these
 * client encodings a multibyte character may end in the byte 0x5c (a backslash). libpg_query
 * lexes as if neither were so: its statement boundaries and literals may then differ from the
 * server's ("SELECT 'a\''; DELETE FROM t; --'" is one SELECT to it, a SELECT and a DELETE to the
 * server). JOHAB is added to the list DESIGN names: its trail bytes include 0x5c too. */
static const char *const backslash_encodings[] = {"SJIS", "SHIFT_JIS_2004", "BIG5", "GBK",
                                                  "UHC",  "GB18030",        "JOHAB"};

void session_note_parameter(struct backend *b, const char *name, const char *value)
{
    if (!name || !value) {
        return;
    }
    static const char *const literal_settings[] = {
        "TimeZone", "DateStyle", "IntervalStyle", "standard_conforming_strings", "client_encoding"};
    for (size_t i = 0; i < sizeof(literal_settings) / sizeof(*literal_settings); i++) {
        if (strcmp(name, literal_settings[i]) == 0) {
            /* literals are read otherwise: the secondary's WITH statements parsed at each
             * Execute are not run for statements prepared before (pin_cte_exec.c) */
            uint64_t h = 1469598103934665603ull;
            for (const char *p = value; *p; p++) {
                h = (h ^ (uint8_t)*p) * 1099511628211ull;
            }
            if (b->literal_seen[i] && b->literal_hash[i] != h && b->session) {
                pin_cte_catalog_moved(b->session);
            }
            b->literal_hash[i] = h;
            b->literal_seen[i] = true;
        }
    }
    if (strcmp(name, "standard_conforming_strings") == 0) {
        b->scs_off = strcasecmp(value, "on") != 0;
    } else if (strcmp(name, "client_encoding") == 0) {
        b->encoding_unsafe = false;
        for (size_t i = 0; i < sizeof(backslash_encodings) / sizeof(*backslash_encodings); i++) {
            b->encoding_unsafe =
                b->encoding_unsafe || strcasecmp(value, backslash_encodings[i]) == 0;
        }
    }
}

/* May the server lex u's next statement text (u NULL: the next unit's first) otherwise than
 * libpg_query? Yes while a backend reports standard_conforming_strings off or such an encoding, and
 * while a statement that may change them (anything mirrored: SET, RESET, DISCARD, ROLLBACK,
 * set_config() ...) has not been answered by the primary: its ParameterStatus would come too late
 * for a text sent behind it. */
bool session_lexing_settings_unsafe(const struct session *s)
{
    for (int i = 0; i < 2; i++) {
        const struct backend *b = &s->backends[i];
        if ((i == s->primary || b->up) && (b->scs_off || b->encoding_unsafe)) {
            return true;
        }
    }
    return false;
}

bool session_lexing_unsure(const struct session *s, const struct unit *u)
{
    if (session_lexing_settings_unsafe(s)) {
        return true;
    }
    if (u && u->lex_writes > 0) {
        return true;
    }
    for (const struct unit *v = s->mirror.head; v && v != u; v = v->next) {
        if (!v->internal && v->mirrored && !v->prim_done) {
            return true;
        }
    }
    return false;
}

/* ---- helpers ------------------------------------------------------------------------------- */

int session_classify_text(struct session *s, const char *sql, struct classify_result *r)
{
    stats_add(&s->worker->stats, STAT_classifications_total, 1);
    return classify_cached(s->worker->classify, sql, &s->worker->classify_opts, r);
}

bool session_relay_mode(const struct session *s)
{
    const struct dials *d = &s->dials->d;
    int pct = d->read_new_percent;
    return !d->mirror && d->compare_percent == 0 &&
           (s->primary == DIAL_OLD ? pct == 0 : pct == 100);
}

/* Does the parse say sql is a read? For a statement mirrored only because the lexing could not
 * be trusted: its rows differing between the backends are a read's divergence, not the data's
 * (mirror.c counts it with the lock-only reads). Served from the cache. */
static bool parsed_read(struct session *s, const char *sql)
{
    struct classify_result r;
    return session_classify_text(s, sql, &r) == 0 && r.kind == CLASSIFY_READ;
}

static void unit_note_sql(struct unit *u, const char *sql, uint64_t fingerprint)
{
    if (!u->sql) {
        u->sql = strndup(sql, 4096);
        u->fingerprint = fingerprint;
    }
}

/* Classify sql into r; when in doubt (no memory, or an untrustworthy parse), mirror. */
static void classify_or_mirror(struct session *s, const struct unit *u, const char *sql,
                               struct classify_result *r)
{
    if (session_classify_text(s, sql, r) < 0) {
        memset(r, 0, sizeof(*r));
        r->kind = CLASSIFY_MIRROR;
    }
    if (session_lexing_unsure(s, u)) {
        r->kind = CLASSIFY_MIRROR;
        r->is_listen = false;  /* so it is mirrored too */
        r->dml_only = false;   /* never wrapped: it may not run in a transaction block */
        r->txn_control = true; /* never sent ahead of the primary */
        r->txn = r->txn_last = CLASSIFY_TXN_OTHER; /* a COMMIT waits for the secondary */
        r->session_objects = true;                 /* see query_effects */
        r->nstatements = -1;                       /* not known */
    }
}

/* COMMIT, END, PREPARE TRANSACTION (and the *_PREPARED verbs): the statement that releases the
 * primary's locks. */
static bool result_commits(const struct classify_result *r)
{
    return r->commits; /* any statement of the string, not only the first or the last */
}

/* u uses c, a statement or portal: unless u defined it, only the backends holding it can run u.
 * Unknown names are the client's error, wherever it runs. */
static void unit_uses(struct unit *u, const struct stmt_class *c)
{
    if (c && c->made_in != u->serial) {
        u->needs &= c->on;
    }
}

/* ---- SQL effects on named statements and portals ------------------------------------------- */

/* e of statement e->stmt; from: the prepared statement (a Parse) whose Execute has it, NULL for
 * a Query's own statements. */
static void record_effect(struct session *s, uint32_t unit, const struct classify_effect *e,
                          uint32_t index, const struct stmt_class *from)
{
    struct stmt_track *t = &s->stmts;
    switch (e->kind) {
    case CLASSIFY_EFFECT_PREPARE: { /* its own statement is not classified: mirrored */
        /* Counted by pinning (a write that makes up values, or prepared unanalysed): each
         * EXECUTE of it is counted too. A Parse's PREPARE was decided at the Parse (its class). */
        struct stmt_class prepared = {
            .mirrored = true,
            .plain_select = !e->may_write,
            .unpinned = from ? from->unpinned
                             : pin_frontend_prepared_reason(s, (uint32_t)e->stmt, e->may_write)};
        stmt_track_define(t, unit, STMT_SPACE_STATEMENT, e->name, &prepared, NULL, STMT_REPLY_EXEC,
                          index);
        break;
    }
    case CLASSIFY_EFFECT_DEALLOCATE:
        pin_cte_own_dropped(s, unit, e->name); /* pgdual's statement for it goes too */
        stmt_track_remove(t, unit, STMT_SPACE_STATEMENT, e->name, STMT_REPLY_EXEC, index);
        break;
    case CLASSIFY_EFFECT_DEALLOCATE_ALL:
        stmt_track_clear(t, unit, 1u << STMT_SPACE_STATEMENT, STMT_REPLY_EXEC, index);
        pin_cte_own_forget(s); /* pgdual's statements are gone too */
        break;
    case CLASSIFY_EFFECT_DISCARD_ALL:
        stmt_track_clear(t, unit, STMT_SPACE_BOTH, STMT_REPLY_EXEC, index);
        pin_cte_own_forget(s);
        break;
    case CLASSIFY_EFFECT_DECLARE: /* a cursor's class is not known: forget the name */
    case CLASSIFY_EFFECT_CLOSE:
        stmt_track_remove(t, unit, STMT_SPACE_PORTAL, e->name, STMT_REPLY_EXEC, index);
        break;
    case CLASSIFY_EFFECT_CLOSE_ALL:
        stmt_track_clear(t, unit, 1u << STMT_SPACE_PORTAL, STMT_REPLY_EXEC, index);
        break;
    }
}

/* sql's statements run as completions first + 1, first + 2 ... of the unit. Effects that cannot
 * be read (no text, no parse, too many) drop everything known, whatever the primary answers. */
static void record_effects(struct session *s, struct unit *u, const char *sql, uint32_t first,
                           const struct stmt_class *from)
{
    struct classify_effect fx[EFFECTS_MAX];
    size_t n = 0;
    if (!sql || classify_effects(sql, fx, EFFECTS_MAX, &n) < 0) {
        stmt_track_clear(&s->stmts, u->serial, STMT_SPACE_BOTH, STMT_REPLY_NONE, 0);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        record_effect(s, u->serial, &fx[i], first + (uint32_t)fx[i].stmt + 1, from);
    }
}

/* Code pgdual cannot see into (DO, CALL, an unknown function) may PREPARE, DEALLOCATE, CLOSE or
 * OPEN named statements and cursors through SPI: nothing known about names survives it. */
static void forget_after_user_code(struct session *s, struct unit *u, bool user_code)
{
    if (user_code) {
        stmt_track_clear(&s->stmts, u->serial, STMT_SPACE_BOTH, STMT_REPLY_NONE, 0);
    }
}

/* May running it change what the catalog says of a table to this session (DDL, SET search_path
 * or ROLE, code pgdual cannot see into)? Plain DML and transaction control do not. */
static bool catalog_may_change(const struct classify_result *r)
{
    return r->parse_error || !r->catalog_safe;
}

/* Why running sql (classified as r) may change session state that a new secondary connection would
 * lack, or NULL when it cannot: only DML and plain transaction control are known not to. The text
 * is searched for the functions that keep state past the transaction (set_config, the
 * session-level advisory locks) and for temporary tables: a false alarm only costs the session
 * its reconnection. */
static const char *session_state_reason(const struct classify_result *r, const char *sql)
{
    if (r->nstatements <= 0 || r->parse_error) {
        return "a statement pgdual could not parse";
    }
    if (r->user_code) {
        return "code pgdual cannot see into (DO, CALL, an unknown function)";
    }
    if (r->is_listen) {
        return "LISTEN";
    }
    if (r->session_objects) {
        return "SQL PREPARE, DECLARE, DEALLOCATE, DISCARD or CLOSE";
    }
    bool txn_only = r->txn_control && r->nstatements == 1 && r->txn != CLASSIFY_TXN_OTHER;
    if (!r->dml_only && !txn_only) {
        return "a statement other than DML or transaction control (SET, DDL, ...)";
    }
    if (sql && (strcasestr(sql, "set_config") || strcasestr(sql, "advisory_lock") ||
                strcasestr(sql, "temp"))) {
        return "set_config, an advisory lock or a temporary table";
    }
    return NULL;
}

/* ---- one message each ---------------------------------------------------------------------- */

/* A Query's class: in relay mode a plain statement's comes without a parse (classify_plain.h: it
 * is one statement, DML, no call, no transaction control, LISTEN, COPY or named objects, which
 * is all that the relay mode reads of it); while the lexing is unsure the parse's rules hold. */
static void query_class(struct session *s, const struct unit *u, const char *sql,
                        struct classify_result *r)
{
    if (!u->relay || session_lexing_unsure(s, u) || !classify_plain(sql, r)) {
        classify_or_mirror(s, u, sql, r);
    }
}

static void on_query(struct session *s, struct unit *u, const char *sql)
{
    struct classify_result r;
    query_class(s, u, sql, &r);
    bool read = r.kind == CLASSIFY_READ;
    bool mirrored = !read && !(r.is_listen && r.nstatements == 1);
    /* A text the server may lex otherwise cannot be split for a replay (mirror.c). */
    u->lex_unsafe = u->lex_unsafe || session_lexing_settings_unsafe(s);
    /* A Query may end an unsynced extended batch: what came before keeps its class. */
    u->mirrored = u->mirrored || mirrored;
    u->nondeterministic = u->nondeterministic || (mirrored && r.nondeterministic);
    if (read) {
        u->reads++;
        u->read_nondeterministic = u->read_nondeterministic || r.nondeterministic;
    } else {
        u->routable = false;
    }
    u->txn_end = u->txn_end || r.txn_control; /* parallel mode never sends these early */
    u->commits = u->commits || r.commits;
    u->copy_in = u->copy_in || r.is_copy_from;
    u->inserts = u->inserts || (mirrored && r.inserts);
    u->user_code = u->user_code || (mirrored && r.user_code);
    u->routable = u->routable && !r.is_copy_from;
    s->listens = s->listens || r.is_listen;
    u->wrap_ok = u->wrap_ok && r.dml_only;
    u->writes += mirrored;
    u->lex_writes += mirrored;
    u->lock_reads += mirrored && r.lock_only_read;
    u->unsure_reads += mirrored && !r.lock_only_read && r.nstatements < 0 && parsed_read(s, sql);
    unit_note_sql(u, sql, r.fingerprint);
    /* Each statement completes once (an empty string with EmptyQueryResponse). The Query drops
     * the unnamed statement and portal as it starts. */
    uint32_t first = stmt_track_count(&s->stmts, u->serial, STMT_REPLY_EXEC,
                                      r.nstatements > 0 ? (uint32_t)r.nstatements : 1);
    stmt_track_remove(&s->stmts, u->serial, STMT_SPACE_STATEMENT, "", STMT_REPLY_NONE, 0);
    stmt_track_remove(&s->stmts, u->serial, STMT_SPACE_PORTAL, "", STMT_REPLY_NONE, 0);
    if (r.session_objects) {
        u->session_objects = true;
        record_effects(s, u, r.nstatements >= 0 ? sql : NULL, first, NULL);
    }
    forget_after_user_code(s, u, mirrored && r.user_code);
    u->catalog_change = u->catalog_change || (mirrored && catalog_may_change(&r));
    if (!u->internal && catalog_may_change(&r) && !r.settings_only) {
        pin_cte_catalog_moved(s); /* a table made since may shadow a WITH statement's */
    }
    const char *why = mirrored || r.is_listen ? session_state_reason(&r, sql) : NULL;
    if (why) {
        session_reconnect_taint(s, why);
    }
}

static void on_parse(struct session *s, struct unit *u, struct wire_reader *rd)
{
    const char *name = wire_cstr(rd);
    const char *sql = wire_cstr(rd);
    uint32_t nth = stmt_track_count(&s->stmts, u->serial, STMT_REPLY_PARSE, 1) + 1;
    if (!name || !sql) {
        u->mirrored = true;
        u->wrap_ok = false;
        return;
    }
    struct classify_result r;
    classify_or_mirror(s, u, sql, &r);
    struct stmt_class c = {
        .mirrored = r.kind != CLASSIFY_READ,
        .nondeterministic = r.nondeterministic,
        .dml_only = r.dml_only,
        .commits = result_commits(&r),
        .txn_end = r.txn_control && r.txn != CLASSIFY_TXN_BEGIN &&
                   r.txn != CLASSIFY_TXN_SAVEPOINT && r.txn != CLASSIFY_TXN_RELEASE,
        .txn_keeps = r.nstatements == 1 && r.txn_control &&
                     (r.txn == CLASSIFY_TXN_BEGIN || r.txn == CLASSIFY_TXN_SAVEPOINT ||
                      r.txn == CLASSIFY_TXN_RELEASE),
        .inserts = r.inserts,
        .lock_only_read = r.lock_only_read,
        .user_code = r.user_code,
        .copy_from = r.is_copy_from,
        .effects = r.session_objects,
        .lex_unsure = r.nstatements < 0,
        .catalog = catalog_may_change(&r),
        .settings_only = r.settings_only,
        .fingerprint = r.fingerprint,
        .session_state = r.kind != CLASSIFY_READ && session_state_reason(&r, sql) != NULL,
    };
    pin_frontend_class(s, &c, false); /* what pinning made of it (pin_frontend.c) */
    stmt_track_define(&s->stmts, u->serial, STMT_SPACE_STATEMENT, name, &c, sql, STMT_REPLY_PARSE,
                      nth);
    pin_frontend_class_done(s);
    u->defines = true;
    /* A named statement must exist on both sides; so must anything that writes. */
    if (name[0] || c.mirrored) {
        u->mirrored = true;
        unit_note_sql(u, sql, c.fingerprint);
    }
}

static void on_bind(struct session *s, struct unit *u, struct wire_reader *rd)
{
    const char *portal = wire_cstr(rd);
    const char *stmt = wire_cstr(rd);
    uint32_t nth = stmt_track_count(&s->stmts, u->serial, STMT_REPLY_BIND, 1) + 1;
    const struct stmt_class *c =
        stmt ? stmt_track_find(&s->stmts, u->serial, STMT_SPACE_STATEMENT, stmt) : NULL;
    /* A statement pgdual does not know may be anything, DEALLOCATE or PREPARE included. */
    static const struct stmt_class unknown = {.mirrored = true, .effects = true};
    unit_uses(u, c);
    u->defines = true;
    if (!portal) {
        u->mirrored = true;
        u->wrap_ok = false;
        return;
    }
    struct stmt_class pc = c ? *c : unknown;
    const struct stmt_class *kept_cte =
        !c && stmt ? stmt_track_kept(&s->stmts, STMT_SPACE_STATEMENT, stmt) : NULL;
    if (kept_cte && kept_cte->pin_cte) {
        /* A WITH statement forgotten after code pgdual could not see into: its Bind checks that
         * it is still there (pin_cte_exec.c), its portal is what it was. */
        pc = *kept_cte;
        c = kept_cte;
    } else if (!pc.pin && !pc.unpinned && stmt) {
        /* Parsed with pinning's RETURNING list, or counted at each Execute, whatever else is
         * unknown (code pgdual cannot see into forgot the names). */
        const struct stmt_class *kept = stmt_track_kept(&s->stmts, STMT_SPACE_STATEMENT, stmt);
        if (kept) {
            pc.pin = kept->pin;
            pc.unpinned = kept->unpinned;
            memcpy(pc.unpinned_table, kept->unpinned_table, sizeof(pc.unpinned_table));
        }
    }
    pin_frontend_class(s, &pc, true); /* a portal pgdual only strips (pin_frontend.c) */
    stmt_track_define(&s->stmts, u->serial, STMT_SPACE_PORTAL, portal, &pc, c ? c->sql : NULL,
                      STMT_REPLY_BIND, nth);
}

static void on_execute(struct session *s, struct unit *u, struct wire_reader *rd)
{
    const char *portal = wire_cstr(rd);
    uint32_t nth = stmt_track_count(&s->stmts, u->serial, STMT_REPLY_EXEC, 1) + 1;
    const struct stmt_class *c =
        portal ? stmt_track_find(&s->stmts, u->serial, STMT_SPACE_PORTAL, portal) : NULL;
    stats_add(&s->worker->stats, STAT_statements_total, 1);
    u->executes++;
    u->wrap_ok = u->wrap_ok && c && c->dml_only;
    u->commits = u->commits || (c && c->commits);
    /* A ROLLBACK [TO SAVEPOINT] through the extended protocol undoes what the block made, as a
     * Query's does (pgdual's table for WITH rows). Not txn_end: that would turn the analysis off
     * behind every pipelined COMMIT (pin_analysis_active), counting ordinary writes. */
    u->undoes = u->undoes || !c || c->txn_end;
    u->inserts = u->inserts || !c || c->inserts;
    unit_uses(u, c);
    if (c && c->copy_from) {
        /* Extended COPY FROM STDIN: the primary answers the Sync that follows only after the
         * copy data, its end and the client's next Sync (it ignores a Sync while copying). */
        u->copy_in = u->copy_ext = true;
        u->routable = false;
    }
    if (c && !c->mirrored) {
        u->reads++;
        u->read_nondeterministic = u->read_nondeterministic || c->nondeterministic;
    }
    if (!c || c->mirrored) {
        u->mirrored = true;
        u->writes++;
        /* BEGIN or SAVEPOINT (PgJDBC sends BEGIN in the batch of a block's first statement)
         * cannot change how the server lexes the texts behind it. */
        u->lex_writes += !c || !c->txn_keeps;
        u->lock_reads += c && c->lock_only_read;
        u->nondeterministic = u->nondeterministic || (c && c->nondeterministic);
        u->user_code = u->user_code || (c && c->user_code);
        if (!c || c->inserts || c->nondeterministic || c->user_code) {
            int i = u->executes - 1; /* this Execute's number in the unit */
            u->execute_draws |= 1ull << (i < 63 ? i : 63);
        }
        if (c && c->sql) {
            unit_note_sql(u, c->sql, c->fingerprint);
        }
    }
    u->session_objects = u->session_objects || !c || c->effects;
    if (!c || c->effects || c->lex_unsure) {
        record_effects(s, u, c && !c->lex_unsure ? c->sql : NULL, nth - 1, c);
    }
    forget_after_user_code(s, u, c && c->user_code);
    u->catalog_change = u->catalog_change || !c || (c->mirrored && c->catalog);
    if (!u->internal && (!c || (c->catalog && !c->settings_only))) {
        pin_cte_catalog_moved(s);
    }
    if (!c || (c->mirrored && c->session_state)) {
        session_reconnect_taint(s, c ? "a prepared statement that changes session state"
                                     : "a portal pgdual does not know");
    }
}

static void on_describe(struct session *s, struct unit *u, struct wire_reader *rd)
{
    uint8_t kind = wire_u8(rd);
    const char *name = wire_cstr(rd);
    if (!name) {
        u->routable = false;
        return;
    }
    enum stmt_space sp = kind == 'S' ? STMT_SPACE_STATEMENT : STMT_SPACE_PORTAL;
    unit_uses(u, stmt_track_find(&s->stmts, u->serial, sp, name));
}

static void on_close(struct session *s, struct unit *u, struct wire_reader *rd)
{
    uint8_t kind = wire_u8(rd);
    const char *name = wire_cstr(rd);
    uint32_t nth = stmt_track_count(&s->stmts, u->serial, STMT_REPLY_CLOSE, 1) + 1;
    u->mirrored = true;
    if (name && (kind == 'S' || kind == 'P')) {
        stmt_track_remove(&s->stmts, u->serial,
                          kind == 'S' ? STMT_SPACE_STATEMENT : STMT_SPACE_PORTAL, name,
                          STMT_REPLY_CLOSE, nth);
    }
}

void session_classify_message(struct session *s, struct unit *u, const uint8_t *msg, size_t len)
{
    struct wire_reader rd;
    wire_reader_init(&rd, msg + 5, len - 5);
    switch (msg[0]) {
    case PqMsg_Query:
        on_query(s, u, (const char *)msg + 5);
        break;
    case PqMsg_Parse:
        on_parse(s, u, &rd);
        break;
    case PqMsg_Bind:
        on_bind(s, u, &rd);
        break;
    case PqMsg_Execute:
        on_execute(s, u, &rd);
        break;
    case PqMsg_Describe:
        on_describe(s, u, &rd);
        break;
    case PqMsg_Close:
        on_close(s, u, &rd);
        break;
    case PqMsg_FunctionCall: /* a function may do anything, set_config() included */
        session_reconnect_taint(s, "a FunctionCall message");
        pin_cte_catalog_moved(s);
        u->mirrored = true;
        u->user_code = u->function_call = true;
        u->wrap_ok = false;
        u->writes++;
        u->lex_writes++;
        break;
    default:
        break;
    }
}

bool session_message_commits(struct session *s, const uint8_t *msg, size_t len)
{
    if (msg[0] == PqMsg_Query && len >= 6 && msg[len - 1] == '\0') {
        struct classify_result r;
        classify_or_mirror(s, s->mirror.building, (const char *)msg + 5, &r);
        return result_commits(&r);
    }
    if (msg[0] == PqMsg_Execute) {
        struct wire_reader rd;
        wire_reader_init(&rd, msg + 5, len - 5);
        const char *portal = wire_cstr(&rd);
        const struct unit *u = s->mirror.building;
        const struct stmt_class *c =
            portal ? stmt_track_find(&s->stmts, u ? u->serial : s->mirror.next_serial + 1,
                                     STMT_SPACE_PORTAL, portal)
                   : NULL;
        return !c || c->commits;
    }
    return false;
}

void session_place_objects(struct session *s, uint32_t serial, uint8_t on)
{
    stmt_track_place(&s->stmts, serial, on);
}

void session_free_maps(struct session *s)
{
    stmt_track_free(&s->stmts);
}
