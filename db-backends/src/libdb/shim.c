/*
 * dbtorture's C shim over Berkeley DB 5.3 (Debian's libdb-5.3).
 *
 * Why a shim: BDB's API is function pointers inside the DB_ENV / DB / DBC structs, whose layouts differ
 * between x86_64 and 32-bit ARM. Compiled against the target's own <db.h>, these plain functions are the
 * whole surface Rust binds to (libdb/ffi.rs), with no struct layout on the Rust side.
 *
 * Configured as rpm 4.16 did (lib/backend/db3.c): DB_CREATE | DB_INIT_CDB | DB_INIT_MPOOL, a thread count
 * and rpm's is_alive callback so failchk can judge dead processes, errors prefixed "rpmdb". Messages BDB
 * prints (errcall and msgcall) are collected in one process-wide buffer that Rust drains.
 */
#include <db.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* ---- messages ---- */

static pthread_mutex_t msg_lock = PTHREAD_MUTEX_INITIALIZER;
static char *msg_buf;
static size_t msg_len, msg_cap;

static void msg_append(const char *pfx, const char *msg) {
    size_t need;
    pthread_mutex_lock(&msg_lock);
    need = msg_len + (pfx ? strlen(pfx) + 2 : 0) + strlen(msg) + 2;
    if (need > msg_cap && need < (1u << 20)) {
        size_t cap = need * 2;
        char *n = realloc(msg_buf, cap);
        if (n) {
            msg_buf = n;
            msg_cap = cap;
        }
    }
    if (need <= msg_cap) {
        msg_len += (size_t)sprintf(msg_buf + msg_len, "%s%s%s\n", pfx ? pfx : "", pfx ? ": " : "", msg);
    }
    pthread_mutex_unlock(&msg_lock);
}

static void errcall(const DB_ENV *dbenv, const char *pfx, const char *msg) {
    (void)dbenv;
    msg_append(pfx, msg);
}

static void msgcall(const DB_ENV *dbenv, const char *msg) {
    (void)dbenv;
    msg_append("rpmdb", msg);
}

/* The messages collected so far, newline-separated, in malloc'd memory (NULL if none); the buffer is emptied. */
char *dbt_take_messages(void) {
    char *out = NULL;
    pthread_mutex_lock(&msg_lock);
    if (msg_len > 0) {
        out = malloc(msg_len + 1);
        if (out) {
            memcpy(out, msg_buf, msg_len);
            out[msg_len] = 0;
        }
        msg_len = 0;
    }
    pthread_mutex_unlock(&msg_lock);
    return out;
}

const char *dbt_strerror(int err) { return db_strerror(err); }

const char *dbt_version(int *major, int *minor, int *patch) { return db_version(major, minor, patch); }

/* ---- is_alive, as rpm's: our pid, or kill(pid, 0) succeeds or fails with EPERM ---- */

/* One addition, as in our bdbenv: a zombie (dead, not yet reaped by its parent) is dead. */
static int is_zombie(pid_t pid) {
    char path[64], buf[512];
    FILE *f;
    size_t n;
    char *rp;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return 0;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}

static int isalive(DB_ENV *dbenv, pid_t pid, db_threadid_t tid, u_int32_t flags) {
    int alive = 0;
    (void)dbenv;
    (void)tid;
    (void)flags;
    if (pid == getpid())
        alive = 1;
    else if (kill(pid, 0) == 0)
        alive = 1;
    else if (errno == EPERM)
        alive = 1;
    return alive && !is_zombie(pid);
}

/* ---- environment ---- */

#define DBT_ENV_CREATE 1u
#define DBT_ENV_FAILCHK_FLAG 2u

/* Open (and create if asked) the environment in `home`. On error *out is NULL and the handle is gone. */
int dbt_env_open(const char *home, unsigned flags, unsigned thread_count, DB_ENV **out) {
    DB_ENV *env = NULL;
    u_int32_t eflags = DB_INIT_CDB | DB_INIT_MPOOL;
    int ret;
    *out = NULL;
    if ((ret = db_env_create(&env, 0)) != 0)
        return ret;
    env->set_errcall(env, errcall);
    env->set_msgcall(env, msgcall);
    env->set_errpfx(env, "rpmdb");
    if ((ret = env->set_thread_count(env, thread_count)) != 0 || (ret = env->set_isalive(env, isalive)) != 0)
        goto fail;
    if (flags & DBT_ENV_CREATE)
        eflags |= DB_CREATE;
    if (flags & DBT_ENV_FAILCHK_FLAG)
        eflags |= DB_FAILCHK;
    if ((ret = env->open(env, home, eflags, 0644)) != 0)
        goto fail;
    *out = env;
    return 0;
fail:
    env->close(env, 0);
    return ret;
}

int dbt_env_failchk(DB_ENV *env) { return env->failchk(env, 0); }

int dbt_env_close(DB_ENV *env) { return env->close(env, 0); }

/* ---- databases ---- */

#define DBT_DB_CREATE 1u
#define DBT_DB_RDONLY 2u
#define DBT_DB_HASH 1
#define DBT_DB_BTREE 2

/* Open a data file in `env` (or, with env NULL, alone with a private cache: the offline reader). */
int dbt_db_open(DB_ENV *env, const char *file, int type, unsigned flags, DB **out) {
    DB *db = NULL;
    u_int32_t oflags = 0;
    int ret;
    *out = NULL;
    if ((ret = db_create(&db, env, 0)) != 0)
        return ret;
    if (!env) {
        db->set_errcall(db, errcall);
        db->set_msgcall(db, msgcall);
        db->set_errpfx(db, "rpmdb");
    }
    if (flags & DBT_DB_CREATE)
        oflags |= DB_CREATE;
    if (flags & DBT_DB_RDONLY)
        oflags |= DB_RDONLY;
    ret = db->open(db, NULL, file, NULL, type == DBT_DB_HASH ? DB_HASH : type == DBT_DB_BTREE ? DB_BTREE : DB_UNKNOWN,
                   oflags, 0644);
    if (ret != 0) {
        db->close(db, 0);
        return ret;
    }
    *out = db;
    return 0;
}

int dbt_db_sync(DB *db) { return db->sync(db, 0); }

int dbt_db_close(DB *db) { return db->close(db, 0); }

/* A cursor; `write` makes it a CDB write cursor (an IW lock, upgraded to W around each put/del). */
int dbt_cursor(DB *db, int write, DBC **out) {
    *out = NULL;
    return db->cursor(db, NULL, out, write ? DB_WRITECURSOR : 0);
}

int dbt_cursor_close(DBC *c) { return c->close(c); }

/* Position on `key`; the value in malloc'd memory. DB_NOTFOUND if absent. */
int dbt_cursor_get(DBC *c, const void *key, size_t klen, void **data, size_t *dlen) {
    DBT k, d;
    int ret;
    memset(&k, 0, sizeof k);
    memset(&d, 0, sizeof d);
    k.data = (void *)key;
    k.size = (u_int32_t)klen;
    d.flags = DB_DBT_MALLOC;
    *data = NULL;
    *dlen = 0;
    if ((ret = c->get(c, &k, &d, DB_SET)) != 0)
        return ret;
    *data = d.data;
    *dlen = d.size;
    return 0;
}

/* The next pair, key and value in malloc'd memory. DB_NOTFOUND at the end. */
int dbt_cursor_next(DBC *c, void **key, size_t *klen, void **data, size_t *dlen) {
    DBT k, d;
    int ret;
    memset(&k, 0, sizeof k);
    memset(&d, 0, sizeof d);
    k.flags = DB_DBT_MALLOC;
    d.flags = DB_DBT_MALLOC;
    *key = *data = NULL;
    *klen = *dlen = 0;
    if ((ret = c->get(c, &k, &d, DB_NEXT)) != 0)
        return ret;
    *key = k.data;
    *klen = k.size;
    *data = d.data;
    *dlen = d.size;
    return 0;
}

/* Store key -> data (replacing a value already there). */
int dbt_cursor_put(DBC *c, const void *key, size_t klen, const void *data, size_t dlen) {
    DBT k, d;
    memset(&k, 0, sizeof k);
    memset(&d, 0, sizeof d);
    k.data = (void *)key;
    k.size = (u_int32_t)klen;
    d.data = (void *)data;
    d.size = (u_int32_t)dlen;
    return c->put(c, &k, &d, DB_KEYFIRST);
}

/* Delete `key`: position on it, then delete there. DB_NOTFOUND if absent. */
int dbt_cursor_del(DBC *c, const void *key, size_t klen) {
    DBT k, d;
    int ret;
    memset(&k, 0, sizeof k);
    memset(&d, 0, sizeof d);
    k.data = (void *)key;
    k.size = (u_int32_t)klen;
    d.flags = DB_DBT_PARTIAL; /* position only: read no data */
    if ((ret = c->get(c, &k, &d, DB_SET)) != 0)
        return ret;
    return c->del(c, 0);
}

/* Numbers Rust needs from <db.h>. */
int dbt_const_notfound(void) { return DB_NOTFOUND; }
int dbt_const_runrecovery(void) { return DB_RUNRECOVERY; }
