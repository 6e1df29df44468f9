#!/usr/bin/env bash
# tests/integration/it_pin_trigger.sh: writes into a table whose trigger makes up values or writes
# elsewhere cannot be pinned (the trigger fires again on new): they are mirrored verbatim but
# counted (nondeterministic_writes_total), their table (or, for a trigger that writes, every
# table) owed to the reconciliation, through both protocols. A trigger that only checks or raises
# (it_rollback.c's) and a trigger on events the write does not fire keep today's behaviour.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_pin_trigger
PQSCRIPT=${PGDUAL_PQSCRIPT:-$(dirname "$PGDUAL_BIN")/tests/pqscript}
[[ -x "$PQSCRIPT" ]] || it_fail "pqscript not found at $PQSCRIPT (cmake --build build)"
it_createdb "$DB"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
pq() { timeout 60 "$PQSCRIPT" "host=127.0.0.1 port=$PROXY_PORT user=postgres dbname=$DB"; }
same() { it_same "$DB" "$@"; }

psql_proxy "$DB" -q <<'SQL'
CREATE TABLE quiet (id int PRIMARY KEY, v int);
CREATE FUNCTION side() RETURNS trigger LANGUAGE plpgsql AS
    $$BEGIN RAISE NOTICE 'old'; RETURN NEW; END$$;
CREATE TRIGGER side BEFORE UPDATE ON quiet FOR EACH ROW EXECUTE FUNCTION side();
CREATE FUNCTION positive() RETURNS trigger LANGUAGE plpgsql AS
    $$BEGIN IF NEW.v < 0 THEN RAISE EXCEPTION 'negative'; END IF; RETURN NEW; END$$;
CREATE TRIGGER positive BEFORE INSERT ON quiet FOR EACH ROW EXECUTE FUNCTION positive();
CREATE TABLE stamped (id int PRIMARY KEY, v int, updated_at timestamptz);
CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS
    $$BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END$$;
CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON stamped FOR EACH ROW EXECUTE FUNCTION stamp();
CREATE FUNCTION lowered() RETURNS trigger LANGUAGE plpgsql AS
    $$BEGIN NEW.v := abs(NEW.v); RETURN NEW; END$$;
CREATE TRIGGER lowered BEFORE UPDATE ON quiet FOR EACH ROW EXECUTE FUNCTION lowered();
CREATE TABLE helped (id int PRIMARY KEY, v int, at timestamptz);
CREATE FUNCTION helper_now() RETURNS timestamptz LANGUAGE sql AS 'SELECT clock_timestamp()';
CREATE FUNCTION helped() RETURNS trigger LANGUAGE plpgsql AS
    $$BEGIN NEW.at := public.helper_now(); RETURN NEW; END$$;
CREATE TRIGGER helped BEFORE INSERT ON helped FOR EACH ROW EXECUTE FUNCTION helped();
CREATE TABLE checked (id int PRIMARY KEY, v int, txt text, doc tsvector);
CREATE FUNCTION checked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- validation only (see ticket (42)): nothing here makes up a value
    IF NEW.v < 0 THEN RAISE EXCEPTION 'quantity (%) must be positive', NEW.v; END IF;
    NEW.doc := to_tsvector('simple', coalesce(NEW.txt, ''));
    RETURN NEW;
END$$;
CREATE TRIGGER checked BEFORE INSERT OR UPDATE ON checked FOR EACH ROW EXECUTE FUNCTION checked();
CREATE TABLE hidden (id int PRIMARY KEY, v int, at timestamptz);
CREATE FUNCTION hidden() RETURNS trigger LANGUAGE plpgsql AS
    $$BEGIN NEW.at := public.helper_now/* a comment */(); RETURN NEW; END$$;
CREATE TRIGGER hidden BEFORE INSERT ON hidden FOR EACH ROW EXECUTE FUNCTION hidden();
CREATE TABLE argued (id int PRIMARY KEY, v int, at timestamptz);
CREATE FUNCTION argued() RETURNS trigger LANGUAGE plpgsql AS
    $$BEGIN NEW.at := TG_ARGV[0]::timestamptz; RETURN NEW; END$$;
CREATE TRIGGER argued BEFORE INSERT ON argued FOR EACH ROW EXECUTE FUNCTION argued('now');
CREATE TABLE audited (id int PRIMARY KEY, v int);
CREATE TABLE audit (id serial PRIMARY KEY, at timestamptz DEFAULT now(), what text);
CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS
    $$BEGIN INSERT INTO audit (what) VALUES (TG_OP); RETURN NULL; END$$;
CREATE TRIGGER audit AFTER DELETE ON audited FOR EACH ROW EXECUTE FUNCTION audit();
SQL
# Rows written directly on both sides: what follows compares only the writes under test.
for side in psql_old psql_new; do
    $side "$DB" -q -c "INSERT INTO quiet SELECT g, g FROM generate_series(1, 5) g" \
        -c "ALTER TABLE stamped DISABLE TRIGGER stamp" \
        -c "INSERT INTO stamped SELECT g, g, '2020-01-01' FROM generate_series(1, 5) g" \
        -c "ALTER TABLE stamped ENABLE TRIGGER stamp" \
        -c "INSERT INTO audited SELECT g, g FROM generate_series(1, 5) g"
done
assert_eq "in_sync" "$(it_status secondary_state)" "in_sync before the writes"

# --- triggers that make up nothing: today's behaviour ------------------------------------------
it_status_mark
psql_proxy "$DB" -q -c "UPDATE quiet SET v = v + 1 WHERE id = 1" -c "INSERT INTO quiet VALUES (6, 6)"
printf '%s\n' $'P\tu\tUPDATE quiet SET v = v + 1 WHERE id = $1' $'E\tu\t2' | pq >/dev/null
psql_proxy "$DB" -q -c "DELETE FROM stamped WHERE id = 5" \
    -c "UPDATE audited SET v = v + 1 WHERE id = 1"
assert_delta nondeterministic_writes_total -eq 0 \
    "a trigger that only raises or checks, and triggers on other events: not counted"
assert_eq "in_sync" "$(it_status secondary_state)" "and new stays in_sync"
same quiet "quiet identical on old and new"
same audit "audit identical (no row yet)"

# --- a BEFORE trigger that makes up a value: counted, its table owed ----------------------------
it_status_mark
psql_proxy "$DB" -q -c "UPDATE public.stamped SET v = v + 1 WHERE id = 1"
assert_delta nondeterministic_writes_total -eq 1 "UPDATE under a clock_timestamp() trigger: counted"
assert_eq "diverged" "$(it_status secondary_state)" "new is out of in_sync"
assert_contains "$(it_status reconcile_tables)" "$DB:public.stamped" \
    "public.stamped is on the reconciliation list"
assert_contains "$(cat "$IT_TMP/pgdual.log")" "a trigger on its table may make up values" \
    "the divergence says why"
it_status_mark
printf '%s\n' $'P\ti\tINSERT INTO public.stamped (id, v) VALUES ($1, 1)' $'E\ti\t7' | pq >/dev/null
printf '%s\n' $'P\tu2\tUPDATE stamped SET v = 0 WHERE id = $1' $'E\tu2\t2' | pq >/dev/null
assert_delta nondeterministic_writes_total -eq 2 "the extended protocol's INSERT and UPDATE: counted"

# --- a validation trigger with prose in its message and a stable built-in: not counted ---------
it_status_mark
psql_proxy "$DB" -q -c "INSERT INTO checked VALUES (1, 1, 'a b')" -c "UPDATE checked SET v = 2"
assert_delta nondeterministic_writes_total -eq 0 \
    "a trigger whose message says 'quantity (%)' and which calls to_tsvector(): not counted"
same checked "checked identical on old and new"

# --- a comment between the helper's name and '(', a value in the trigger's arguments: counted ---
it_status_mark
psql_proxy "$DB" -q -c "INSERT INTO hidden VALUES (1, 1)" -c "INSERT INTO argued VALUES (1, 1)"
assert_delta nondeterministic_writes_total -eq 2 \
    "helper_now/* comment */() and EXECUTE FUNCTION argued('now'): both counted"

# --- a trigger calling a helper that reads the clock (review 14, finding 2): counted ------------
it_status_mark
psql_proxy "$DB" -q -c "INSERT INTO helped VALUES (1, 1)"
assert_delta nondeterministic_writes_total -eq 1 \
    "INSERT under a trigger calling a volatile helper function: counted"

# --- a trigger that writes another table: counted, every table owed -----------------------------
it_status_mark
psql_proxy "$DB" -q -c "BEGIN" -c "DELETE FROM public.audited WHERE id = 2" -c "COMMIT"
assert_delta nondeterministic_writes_total -eq 1 "DELETE under a trigger that inserts: counted"
assert_eq "*" "$(it_status reconcile_tables)" "a trigger that writes owes every table"
assert_contains "$(cat "$IT_TMP/pgdual.log")" "a trigger on its table may write other tables" \
    "the divergence says why"
it_proxy_stop
