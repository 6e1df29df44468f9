/* protocol/pgq_walk.c: the generic parse-tree walk (see pgq_walk.h). */
#include "protocol/pgq_walk.h"

#include <string.h>

struct pgq_walker {
    void (*visit)(void *ctx, const ProtobufCMessage *m);
    void *ctx;
    bool complete;
};

static void walk_message(struct pgq_walker *w, const ProtobufCMessage *m, int depth);

static void walk_fields(struct pgq_walker *w, const ProtobufCMessage *m, int depth)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE) {
            continue;
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n;
            const ProtobufCMessage *const *v;
            memcpy(&n, base + f->quantifier_offset, sizeof n);
            memcpy(&v, base + f->offset, sizeof v);
            for (size_t k = 0; k < n; k++) {
                walk_message(w, v[k], depth + 1);
            }
            continue;
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t which; /* the oneof's case member: only the active field is valid */
            memcpy(&which, base + f->quantifier_offset, sizeof which);
            if (which != f->id) {
                continue;
            }
        }
        const ProtobufCMessage *sub;
        memcpy(&sub, base + f->offset, sizeof sub);
        walk_message(w, sub, depth + 1);
    }
}

static void walk_message(struct pgq_walker *w, const ProtobufCMessage *m, int depth)
{
    if (m == NULL) {
        return;
    }
    if (depth > PGQ_WALK_MAX_DEPTH) {
        w->complete = false;
        return;
    }
    w->visit(w->ctx, m);
    walk_fields(w, m, depth);
}

bool pgq_walk(const ProtobufCMessage *m, void (*visit)(void *ctx, const ProtobufCMessage *m),
              void *ctx)
{
    struct pgq_walker w = {.visit = visit, .ctx = ctx, .complete = true};
    walk_message(&w, m, 0);
    return w.complete;
}
