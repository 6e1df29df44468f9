#!/usr/bin/env python3
# tests/fuzz/gen_sql_key.py: generates DML-heavy statements (every constant form sql_key folds or keeps,
# casts, typed literals, precisions, comments, continuations), 60 % of them mutated by 1-3 byte
# edits, one file each, for fuzz_sql_key: tests/fuzz/gen_sql_key.py SEED OUTDIR COUNT, then replay
# OUTDIR with build/tests/fuzz_sql_key (fast, no sanitizer) or seed libFuzzer with it.
import random, os, sys
random.seed(int(sys.argv[1]))
out = sys.argv[2]; n = int(sys.argv[3])
os.makedirs(out, exist_ok=True)
ws = [" ", "  ", "\n", "\t", " /* c */ ", " /* a /* b */ */ ", " -- x\n", "\r\n", "\f"]
def W(): return random.choice(ws) if random.random() < 0.3 else " "
def num():
    return random.choice(["0","1","42","2147483647","2147483648","99999999999999999999","007",
        "1.5",".5","1.","1e10","1.e5","2.5E-3","1e+3","0.0","3.14159"])
def sstr():
    c = random.choice(["", "a", "it''s", "now", " today", "Tomorrow x", "yesterday", "nowhere", "x y", "1", "\\", "é", "'"+"'", "no"])
    f = random.random()
    if f < 0.5: return "'" + c + "'"
    if f < 0.6: return "E'" + c.replace("\\", "\\\\") + "'"
    if f < 0.7: return "$$" + c.replace("''", "'") + "$$"
    if f < 0.75: return "$t$" + c.replace("''","'") + "$t$"
    if f < 0.8: return "N'" + c + "'"
    if f < 0.85: return "'" + c + "'\n'" + random.choice(["", "w", "x"]) + "'"
    if f < 0.9: return "B'" + random.choice(["", "1", "101"]) + "'"
    if f < 0.95: return "X'" + random.choice(["", "f", "1F"]) + "'"
    return "U&'" + random.choice(["a", "\\0061", "!0061"]) + "'" + random.choice(["", " UESCAPE '!'"])
def const():
    r = random.random()
    if r < 0.4: return num()
    if r < 0.8: return sstr()
    return random.choice(["$1", "$2", "NULL", "true", "-" + num(), "+" + num()])
def expr(d=0):
    r = random.random()
    if d > 2 or r < 0.35: return const()
    if r < 0.5: return const() + "::" + random.choice(["date", "timestamptz", "int", "numeric(10,2)", "float(" + random.choice(["1","3","53","54","0"]) + ")", "varchar(5)", "text", "int[3]", "interval", "bit(3)"])
    if r < 0.6: return random.choice(["date", "timestamp", "time(3)", "interval", "int4"]) + " " + sstr()
    if r < 0.7: return "f(" + expr(d+1) + "," + W() + expr(d+1) + ")"
    if r < 0.75: return random.choice(["current_time", "localtimestamp", "current_timestamp"]) + "(" + random.choice(["0","3","6","7"]) + ")"
    if r < 0.8: return "now()"
    if r < 0.85: return "CAST(" + expr(d+1) + " AS " + random.choice(["date", "text", "timestamptz"]) + ")"
    if r < 0.9: return "ARRAY[" + expr(d+1) + "," + expr(d+1) + "]"
    return "(" + expr(d+1) + W() + random.choice(["+", "-", "||", "=", "<>", "*"]) + W() + expr(d+1) + ")"
def stmt():
    r = random.random()
    if r < 0.3: return "SELECT" + W() + expr() + "," + W() + expr() + W() + "FROM t WHERE a =" + W() + expr() + random.choice(["", " LIMIT " + num(), " OFFSET " + const(), " FETCH FIRST " + num() + " ROWS ONLY", " FOR UPDATE"])
    if r < 0.45: return "INSERT INTO t VALUES (" + expr() + "," + W() + expr() + ")" + random.choice(["", " RETURNING a"])
    if r < 0.55: return "UPDATE t SET a = a +" + W() + expr() + " WHERE id = " + expr()
    if r < 0.6: return "DELETE FROM t WHERE a = " + expr()
    if r < 0.65: return "WITH w AS (SELECT " + expr() + ") SELECT * FROM w"
    if r < 0.7: return "VALUES (" + expr() + "), (" + expr() + ")"
    if r < 0.75: return "(SELECT " + expr() + ") UNION ALL (SELECT " + expr() + ")"
    if r < 0.8: return random.choice(["EXPLAIN (ANALYZE " + random.choice(["0","1","'off'","'on'","false"]) + ") DELETE FROM t", "COPY t FROM " + random.choice(["''", "'f'", "STDIN"]), "SET x = " + const(), "BEGIN", "COMMIT"])
    if r < 0.85: return "SELECT * FROM t TABLESAMPLE system(" + num() + ")"
    if r < 0.9: return "SELECT " + expr() + " " + expr()
    return "select x from t where a in (" + ",".join(expr() for _ in range(random.randint(1,4))) + ")"
chars = list("'\"$;()[]:.,-+*/<>=!~@#%^&|`?eEnNbBxXuU&0123456789 \n\r\t") + ["/*", "*/", "--", "''", "$$", "$a$", "E'", "U&'", "1.", ".5", "e5", "::"]
def mutate(s):
    for _ in range(random.randint(1, 3)):
        p = random.randint(0, len(s))
        r = random.random()
        if r < 0.4: s = s[:p] + random.choice(chars) + s[p:]
        elif r < 0.7: s = s[:p] + s[p+1:]
        else:
            q = random.randint(0, len(s)); a, b = min(p, q), max(p, q)
            s = s[:p] + s[a:b][:20] + s[p:]
    return s
for i in range(n):
    k = random.choice([1,1,1,2,3])
    s = (";" + W()).join(stmt() for _ in range(k)) + random.choice(["", ";", " ;", " -- end"])
    if random.random() < 0.6: s = mutate(s)
    open(os.path.join(out, "g%06d" % i), "w").write(s)
