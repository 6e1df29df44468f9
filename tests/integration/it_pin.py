#!/usr/bin/env python3
"""tests/integration/it_pin.py: the INSERT workload of it_pin.sh and its checks.

    it_pin.py gen CLIENT PROTO           print CLIENT's script (tests/harness/pqscript.c format)
    it_pin.py psycopg2 CONNINFO          run a script of Q lines from stdin with psycopg2, printing
                                         what pqscript prints
    it_pin.py committed CLIENT PROTO OUT check CLIENT's outcomes in OUT (each INSERT as planned:
                                         the planned failures 23505, the others one row) and
                                         print the RETURNING values of the rows it committed

PROTO is "simple" (Q lines only: psycopg2 or PQexec) or "extended" (PQprepare/PQexecPrepared for
most INSERTs, PQexecParams for the rest and for the transaction verbs).

CLIENT's 200 INSERTs go to t_serial, t_ident and t_uuid in turn, in batches of ten, each batch
with one INSERT that fails on the unique column k (k = -1 is taken). A batch runs in autocommit,
in a transaction with a savepoint around each INSERT (the failed one rolled back to it), or in a
transaction without savepoints: the failed INSERT aborts it, the client rolls it back (its earlier
INSERTs with it) and runs the rest of the batch in a second transaction.
"""
import sys

TABLES = ("t_serial", "t_ident", "t_uuid")
# The row as text, the same expression it_pin.sh reads from old and new.
ROWTXT = "concat_ws('|', id, k, c, n, extract(epoch FROM at), u, r)"
# Time functions written into some INSERTs explicitly (the others take the column default).
TIME_FUNCS = ("now()", "CURRENT_TIMESTAMP", "transaction_timestamp()", "statement_timestamp()")
INSERTS = 200
BATCH = 10


def insert_sql(table, explicit, params):
    """The INSERT text; params = the values of k, c, n (and nothing for $n placeholders)."""
    cols = "k, c, n" + (", at" if explicit is not None else "")
    vals = list(params) if params else ["$1", "$2", "$3"]
    if explicit is not None:
        vals.append(TIME_FUNCS[explicit])
    return "INSERT INTO %s (%s) VALUES (%s) RETURNING %s" % (table, cols, ", ".join(vals), ROWTXT)


def plan(client, proto):
    """[(tag, line)]: tag is ins, ins_fail, prep or the expected command status of a verb."""
    ext = proto == "extended"
    steps = []
    if ext:
        for table in TABLES:
            for explicit in (None,) + tuple(range(len(TIME_FUNCS))):
                name = "i_%s_%s" % (table, "d" if explicit is None else explicit)
                steps.append(("prep", "P\t%s\t%s" % (name, insert_sql(table, explicit, None))))

    def verb(word, tag):
        steps.append((tag, ("X\t" if ext else "Q\t") + word))

    def insert(n):
        table = TABLES[n % 3]
        explicit = (n // 5) % len(TIME_FUNCS) if n % 5 == 4 else None
        fails = n % BATCH == (n // BATCH * 7 + client) % BATCH
        k = -1 if fails else client * 1000 + n
        params = [str(k), str(client), str(n)]
        tag = "ins_fail" if fails else "ins"
        if not ext:
            steps.append((tag, "Q\t" + insert_sql(table, explicit, params)))
        elif n % 4 == 3:
            steps.append((tag, "X\t%s\t%s" % (insert_sql(table, explicit, None), "\t".join(params))))
        else:
            name = "i_%s_%s" % (table, "d" if explicit is None else explicit)
            steps.append((tag, "E\t%s\t%s" % (name, "\t".join(params))))
        return fails

    for b in range(INSERTS // BATCH):
        ns = range(b * BATCH, (b + 1) * BATCH)
        mode = (b + client) % 3
        if mode == 0:  # autocommit
            for n in ns:
                insert(n)
        elif mode == 1:  # one transaction, a savepoint around each INSERT
            verb("BEGIN", "BEGIN")
            for n in ns:
                verb("SAVEPOINT s", "SAVEPOINT")
                if insert(n):
                    verb("ROLLBACK TO SAVEPOINT s", "ROLLBACK")
                else:
                    verb("RELEASE SAVEPOINT s", "RELEASE")
            verb("COMMIT", "COMMIT")
        else:  # no savepoint: the failure aborts the transaction
            verb("BEGIN", "BEGIN")
            rest = iter(ns)
            for n in rest:
                if insert(n):
                    break
            verb("ROLLBACK", "ROLLBACK")
            tail = list(rest)
            if tail:
                verb("BEGIN", "BEGIN")
                for n in tail:
                    insert(n)
                verb("COMMIT", "COMMIT")
    return steps


def run_psycopg2(conninfo):
    import psycopg2  # only this subcommand needs it

    conn = psycopg2.connect(conninfo)
    conn.autocommit = True  # the script sends its own BEGIN / COMMIT
    cur = conn.cursor()
    for i, line in enumerate(sys.stdin, 1):
        verb, _, sql = line.rstrip("\n").partition("\t")
        if verb != "Q":
            sys.exit("it_pin.py psycopg2: line %d: only Q lines: %r" % (i, line))
        try:
            cur.execute(sql)
        except psycopg2.Error as e:
            print("%d\tFATAL_ERROR\t%s\t0\t\t0\t0\t" % (i, e.pgcode), flush=True)
            continue
        rows = cur.fetchall() if cur.description is not None else []
        value = ""
        if rows:
            value = "\\N" if rows[0][0] is None else str(rows[0][0])
        status = "TUPLES_OK" if cur.description is not None else "COMMAND_OK"
        tuples = "" if cur.rowcount < 0 else str(cur.rowcount)
        print("%d\t%s\t%s\t%d\t%s\t%d\t0\t%s" % (i, status, cur.statusmessage, len(rows), tuples,
                                                len(cur.description or ()), value), flush=True)
    conn.close()


def committed(client, proto, out_path):
    steps = plan(client, proto)
    with open(out_path) as f:
        results = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    if len(results) != len(steps):
        sys.exit("client %d: %d results for %d script lines" % (client, len(results), len(steps)))
    done, pending, marks = [], None, []
    for i, ((tag, line), r) in enumerate(zip(steps, results), 1):
        status, what, value = r[1], r[2], r[7] if len(r) > 7 else ""
        want = {"ins": ("TUPLES_OK", "INSERT 0 1"), "ins_fail": ("FATAL_ERROR", "23505"),
                "prep": ("COMMAND_OK", "")}.get(tag, ("COMMAND_OK", tag))
        if r[0] != str(i) or (status, what) != want or (tag == "ins" and r[3] != "1"):
            sys.exit("client %d line %d (%s): got %s, want %s" % (client, i, line, r[1:], want))
        if tag == "BEGIN":
            pending = []
        elif tag == "SAVEPOINT":
            marks.append(len(pending))
        elif tag == "RELEASE":
            marks.pop()
        elif tag == "ROLLBACK" and marks:  # ROLLBACK TO SAVEPOINT
            del pending[marks.pop():]
        elif tag == "ROLLBACK":
            pending = None
        elif tag == "COMMIT":
            done += pending
            pending = None
        elif tag == "ins":
            (done if pending is None else pending).append(value)
    for v in done:
        print(v)


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "gen" and len(sys.argv) == 4:
        for _, line in plan(int(sys.argv[2]), sys.argv[3]):
            print(line)
    elif cmd == "psycopg2" and len(sys.argv) == 3:
        run_psycopg2(sys.argv[2])
    elif cmd == "committed" and len(sys.argv) == 5:
        committed(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
