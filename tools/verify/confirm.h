/* tools/verify/confirm.h: the locked comparison that ends a round of --live passes. */
#pragma once
#include "tools/verify/util.h"

struct live;

/* Compares every comparable table the options name with each side's table SHARE-locked (the
 * primary first) for one count + checksum per side. Tables that differ are put on lv->redo.
 * 0: all equal; 1: some differ (or could not be locked: also on lv->redo); -1: error (lv->error).
 */
int confirm_tables(struct live *lv) WUR;
