/* wwsfd's session table: growth, lookups, removal, expiry, shrinking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wwsfd/sessions.h"

#define N 5000

static const uint8_t key[SESSION_KEY_LEN] = { 1, 2, 3 };

static void fill(struct session *s, int i, int64_t expires_at) {
        memset(s, 0, sizeof *s);
        snprintf(s->holder, sizeof s->holder, "anon-%d", i);
        snprintf(s->sub, sizeof s->sub, "sub-%d", i);
        snprintf(s->pool, sizeof s->pool, i % 2 ? "pool-a" : "");
        snprintf(s->impu, sizeof s->impu, "sip:+1555%06d@ims.example.com", i);
        snprintf(s->impi, sizeof s->impi, "u%d@ims.example.com", i);
        s->anon = i % 3 == 0;
        s->expires_at = expires_at;
}

static void test_grow_get_remove_expire(void **state) {
        (void) state;
        struct session_table *t;
        assert_int_equal(session_table_new(1u << 20, key, &t), 0);
        static char ids[N][SESSION_ID_LEN + 1];
        for (int i = 0; i < N; i++) {
                struct session s;
                /* Half expire at 100, half at 200. */
                fill(&s, i, i % 2 ? 200 : 100);
                assert_int_equal(session_create(t, &s), 0);
                assert_int_equal(strlen(s.id), SESSION_ID_LEN);
                memcpy(ids[i], s.id, sizeof ids[i]);
        }
        for (int i = 0; i < N; i++) {
                struct session got, want;
                fill(&want, i, i % 2 ? 200 : 100);
                assert_true(session_get(t, ids[i], 50, &got));
                assert_string_equal(got.id, ids[i]);
                assert_string_equal(got.holder, want.holder);
                assert_string_equal(got.sub, want.sub);
                assert_string_equal(got.pool, want.pool);
                assert_string_equal(got.impu, want.impu);
                assert_string_equal(got.impi, want.impi);
                assert_int_equal(got.anon, want.anon);
                assert_int_equal(got.expires_at, want.expires_at);
        }
        struct session got;
        assert_false(session_get(t, "not-an-id", 50, &got));
        assert_false(session_get(t, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 50, &got));
        /* An expired session is not handed out, even before expiry runs. */
        assert_false(session_get(t, ids[0], 100, &got));
        assert_true(session_get(t, ids[1], 100, &got));

        for (int i = 0; i < N; i += 4)
                session_remove(t, ids[i]);
        for (int i = 0; i < N; i++)
                assert_int_equal(session_get(t, ids[i], 50, &got), i % 4 != 0);

        /* Expiry drops the even ones; the table shrinks and keeps the rest. */
        session_expire(t, 150);
        for (int i = 0; i < N; i++)
                assert_int_equal(session_get(t, ids[i], 150, &got), i % 2 == 1);
        session_expire(t, 250);
        for (int i = 0; i < N; i++)
                assert_false(session_get(t, ids[i], 0, &got));
        /* Still usable after shrinking to nothing. */
        struct session s;
        fill(&s, 7, 1000);
        assert_int_equal(session_create(t, &s), 0);
        assert_true(session_get(t, s.id, 999, &got));
        assert_string_equal(got.impu, "sip:+1555000007@ims.example.com");
        session_table_free(t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_grow_get_remove_expire),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
