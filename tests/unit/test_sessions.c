/* wwsfd's sessions: the table (growth, lookups, removal, expiry, shrinking),
 * tags and sub handles, the cookie. */
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

/* Tags: fixed length, stable for one key, another for another key or id;
 * sub handles likewise. */
static void test_tags_and_subs(void **state) {
        (void) state;
        static const uint8_t other_key[SESSION_KEY_LEN] = { 9 };
        struct session_table *t, *u;
        assert_int_equal(session_table_new(16, key, &t), 0);
        assert_int_equal(session_table_new(16, other_key, &u), 0);
        struct session a, b;
        fill(&a, 1, 100);
        fill(&b, 2, 100);
        assert_int_equal(session_create(t, &a), 0);
        assert_int_equal(session_create(t, &b), 0);
        char ta[SESSION_TAG_LEN + 1], ta2[SESSION_TAG_LEN + 1], tb[SESSION_TAG_LEN + 1], tu[SESSION_TAG_LEN + 1];
        session_tag(t, a.id, ta);
        session_tag(t, a.id, ta2);
        session_tag(t, b.id, tb);
        session_tag(u, a.id, tu);
        assert_int_equal(strlen(ta), SESSION_TAG_LEN);
        assert_true(session_tag_well_formed(ta));
        assert_string_equal(ta, ta2);
        assert_string_not_equal(ta, tb);
        assert_string_not_equal(ta, tu);
        assert_false(session_tag_well_formed("1"));
        assert_false(session_tag_well_formed("AAAAAAAAAAA*"));
        assert_false(session_tag_well_formed("AAAAAAAAAAAAA"));

        char sa[STORE_HOLDER_MAX], sa2[STORE_HOLDER_MAX], su[STORE_HOLDER_MAX];
        session_sub_for(t, "user:uid=alice", sa, sizeof sa);
        session_sub_for(t, "user:uid=alice", sa2, sizeof sa2);
        session_sub_for(u, "user:uid=alice", su, sizeof su);
        assert_string_equal(sa, sa2);
        assert_string_not_equal(sa, su);
        assert_int_equal(strncmp(sa, "u-", 2), 0);
        assert_null(strstr(sa, "alice"));
        session_table_free(t);
        session_table_free(u);
}

/* The cookie: the others of a new session are the live ones (newest 7 at
 * most), a refresh picks by tag or the newest, the Set-Cookie value keeps
 * the others and clears itself when none is left. */
static void test_cookie(void **state) {
        (void) state;
        struct session_table *t;
        assert_int_equal(session_table_new(64, key, &t), 0);
        struct session s[10];
        for (int i = 0; i < 10; i++) {
                fill(&s[i], i, i == 3 ? 50 : 100);      /* s[3] ends first */
                assert_int_equal(session_create(t, &s[i]), 0);
        }
        char cookie[2 * SESSION_COOKIE_VALUE_MAX] = "", others[SESSION_COOKIE_VALUE_MAX];
        for (int i = 0; i < 10; i++) {
                strcat(cookie, i ? "." : "");
                strcat(cookie, s[i].id);
                if (i == 4)
                        strcat(cookie, ".garbage");     /* not an id: ignored */
        }
        /* The cookie holds ids 0..9: only the newest 8 are read (2..9), s[3]
         * is over at 60, and 7 are kept for the new session: 4..9 and 2. */
        session_cookie_others(t, cookie, 60, others, sizeof others);
        char want[SESSION_COOKIE_VALUE_MAX];
        snprintf(want, sizeof want, "%s.%s.%s.%s.%s.%s.%s", s[2].id, s[4].id, s[5].id, s[6].id, s[7].id, s[8].id,
                 s[9].id);
        assert_string_equal(others, want);
        session_cookie_others(t, NULL, 60, others, sizeof others);
        assert_string_equal(others, "");

        /* Picking: the newest without a tag, the tagged one with it. */
        char two[2 * SESSION_ID_LEN + 2];
        snprintf(two, sizeof two, "%s.%s", s[5].id, s[6].id);
        struct session got;
        assert_true(session_cookie_pick(t, two, NULL, 60, &got, others, sizeof others));
        assert_string_equal(got.id, s[6].id);
        assert_string_equal(others, s[5].id);
        char tag[SESSION_TAG_LEN + 1];
        session_tag(t, s[5].id, tag);
        assert_true(session_cookie_pick(t, two, tag, 60, &got, others, sizeof others));
        assert_string_equal(got.id, s[5].id);
        assert_string_equal(others, s[6].id);
        session_tag(t, s[7].id, tag);           /* not in this cookie */
        assert_false(session_cookie_pick(t, two, tag, 60, &got, others, sizeof others));
        assert_false(session_cookie_pick(t, two, NULL, 100, &got, others, sizeof others));     /* ended */
        assert_false(session_cookie_pick(t, NULL, NULL, 60, &got, others, sizeof others));

        char set[SESSION_SET_COOKIE_MAX];
        session_cookie_format(set, sizeof set, s[5].id, s[6].id, 3600);
        snprintf(want, sizeof want, "wwsf_session=%s.%s; Path=/api/v1/; Max-Age=3600; HttpOnly; Secure; SameSite=Strict",
                 s[5].id, s[6].id);
        assert_string_equal(set, want);
        session_cookie_format(set, sizeof set, "", s[6].id, 3600);
        snprintf(want, sizeof want, "wwsf_session=%s; Path=/api/v1/; Max-Age=3600; HttpOnly; Secure; SameSite=Strict",
                 s[6].id);
        assert_string_equal(set, want);
        session_cookie_format(set, sizeof set, "", NULL, 3600);
        assert_string_equal(set, "wwsf_session=; Path=/api/v1/; Max-Age=0; HttpOnly; Secure; SameSite=Strict");
        session_table_free(t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_grow_get_remove_expire),
                cmocka_unit_test(test_tags_and_subs),
                cmocka_unit_test(test_cookie),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
