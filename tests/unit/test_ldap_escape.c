/* ldap_filter_escape() of src/wwsfd/ldap_auth.h: RFC 4515 escaping of the
 * username put into the search filter, and what ldap_pool_login() refuses
 * before any LDAP traffic. No network: the pool connects lazily, and nothing
 * here reaches a connection.
 *
 * NUL: ldap_filter_escape() takes a C string, so a NUL cannot be inside its
 * input (the string ends there); the HTTP layer refuses usernames with an
 * embedded NUL before they get here (api_login.c). What is tested is that
 * escaping stops at the first NUL. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>
#include <ldap.h>

#include "config/daemon_config.h"
#include "wwsfd/ldap_auth.h"

static void expect_escape(const char *in, const char *want) {
        char out[1024];
        int n = ldap_filter_escape(in, out, sizeof out);
        assert_int_equal(n, (int) strlen(want));
        assert_string_equal(out, want);
}

static void test_plain_values_unchanged(void **state) {
        expect_escape("alice", "alice");
        expect_escape("alice@example.com", "alice@example.com");
        expect_escape("O'Brien-Smith_2 +x=y,z;<>\"#~|&!", "O'Brien-Smith_2 +x=y,z;<>\"#~|&!");
        expect_escape("", "");
}

static void test_rfc4515_specials(void **state) {
        expect_escape("*", "\\2a");
        expect_escape("(", "\\28");
        expect_escape(")", "\\29");
        expect_escape("\\", "\\5c");
        expect_escape("al*", "al\\2a");
        /* RFC 4515 section 4's own examples. */
        expect_escape("Parens R Us (for all your parenthetical needs)",
                      "Parens R Us \\28for all your parenthetical needs\\29");
        expect_escape("C:\\MyFile", "C:\\5cMyFile");
}

/* The classic injections: each must stay one assertion value. */
static void test_injections(void **state) {
        expect_escape("alice)(uid=*", "alice\\29\\28uid=\\2a");
        expect_escape("*)(|(uid=*", "\\2a\\29\\28|\\28uid=\\2a");
        expect_escape("*)(uid=*))(|(uid=*", "\\2a\\29\\28uid=\\2a\\29\\29\\28|\\28uid=\\2a");
        expect_escape("alice)(|(objectClass=*)", "alice\\29\\28|\\28objectClass=\\2a\\29");
        expect_escape("\\2a", "\\5c2a");       /* an escape sequence typed in is data too */
        expect_escape("\\\\", "\\5c\\5c");
}

static void test_control_and_high_bytes(void **state) {
        expect_escape("a\x01" "b", "a\\01b");
        expect_escape("\n\r\t\x1f", "\\0a\\0d\\09\\1f");
        expect_escape("\x80", "\\80");
        expect_escape("\xff", "\\ff");
        expect_escape("\xc3\xa5lice", "\\c3\\a5lice");             /* UTF-8 "ålice" */
        expect_escape("\xe2\x82\xac", "\\e2\\82\\ac");             /* UTF-8 "€" */
        expect_escape(" ~", " ~");                                 /* 0x20 and 0x7e: printable */
        expect_escape("\x7f", "\x7f");  /* DEL needs no escape (RFC 4515 UTF1SUBSET); usernames with it are refused */
}

/* The string ends at the first NUL: what follows is never seen. */
static void test_stops_at_nul(void **state) {
        const char in[] = { 'a', '\0', '*', ')', '\0' };
        char out[16];
        assert_int_equal(ldap_filter_escape(in, out, sizeof out), 1);
        assert_string_equal(out, "a");
}

static void test_buffer_too_small(void **state) {
        char out[8];
        memset(out, 'X', sizeof out);
        /* "abc" needs 4 bytes with its NUL. */
        assert_int_equal(ldap_filter_escape("abc", out, 4), 3);
        assert_string_equal(out, "abc");
        assert_int_equal(ldap_filter_escape("abc", out, 3), -1);
        assert_string_equal(out, "");   /* never half a value */
        /* "*" needs 4 ("\2a" and the NUL): an escape is never cut in half. */
        assert_int_equal(ldap_filter_escape("*", out, 4), 3);
        assert_string_equal(out, "\\2a");
        assert_int_equal(ldap_filter_escape("*", out, 3), -1);
        assert_int_equal(ldap_filter_escape("a*", out, 4), -1);
        assert_int_equal(ldap_filter_escape("a*", out, 5), 4);
        assert_string_equal(out, "a\\2a");
        assert_int_equal(ldap_filter_escape("", out, 1), 0);
        assert_string_equal(out, "");
        assert_int_equal(ldap_filter_escape("", out, 0), -1);
        assert_int_equal(ldap_filter_escape("a", out, -5), -1);
        assert_int_equal(ldap_filter_escape(NULL, out, sizeof out), -1);
        assert_int_equal(ldap_filter_escape("a", NULL, 8), -1);

        /* The longest username (255 bytes), every byte escaped: 765 + 1. */
        char in[256], big[766];
        memset(in, '*', 255);
        in[255] = '\0';
        assert_int_equal(ldap_filter_escape(in, big, sizeof big), 765);
        assert_int_equal(ldap_filter_escape(in, big, sizeof big - 1), -1);
}

/* Every byte value against libldap's own escaping
 * (ldap_bv2escaped_filter_value, upper-case hex, which also escapes DEL),
 * and random strings decoded back to themselves. */
static void test_agrees_with_libldap(void **state) {
        for (int c = 1; c < 256; c++) {
                char in[2] = { (char) c, '\0' }, out[8];
                struct berval bin = { 1, in }, bout = { 0, NULL };
                assert_int_equal(ldap_bv2escaped_filter_value(&bin, &bout), 0);
                int n = ldap_filter_escape(in, out, sizeof out);
                if (c == 0x7f)
                        assert_string_equal(out, "\x7f");
                else {
                        assert_int_equal(n, (int) bout.bv_len);
                        assert_int_equal(strcasecmp(out, bout.bv_val), 0);
                }
                ber_memfree(bout.bv_val);
        }

        srandom(4515);
        for (int round = 0; round < 2000; round++) {
                char in[64], out[64 * 3 + 1], back[64];
                int len = (int) (random() % 63);
                for (int i = 0; i < len; i++)
                        in[i] = (char) (1 + random() % 255);
                in[len] = '\0';
                int n = ldap_filter_escape(in, out, sizeof out);
                assert_true(n >= len);
                int k = 0;
                for (int i = 0; i < n; i++) {
                        unsigned char ch = (unsigned char) out[i];
                        assert_true(ch != '*' && ch != '(' && ch != ')' && ch >= 0x20 && ch < 0x80);
                        if (ch == '\\') {
                                unsigned v;
                                assert_true(i + 2 < n);
                                assert_int_equal(sscanf(out + i + 1, "%2x", &v), 1);
                                back[k++] = (char) v;
                                i += 2;
                        } else
                                back[k++] = (char) ch;
                }
                assert_int_equal(k, len);
                assert_memory_equal(back, in, (size_t) len);
        }
}

/* ---- what ldap_pool_login() answers without asking LDAP ---- */

struct answer {
        int calls;
        enum ldap_login_status status;
        const struct ldap_user *user;
};

static void on_done(void *userdata, enum ldap_login_status status, const struct ldap_user *user,
                    unsigned long elapsed_us) {
        struct answer *a = userdata;
        a->calls++;
        a->status = status;
        a->user = user;
}

static void expect_answer_now(struct ldap_pool *p, const char *username, const char *password,
                              enum ldap_login_status want) {
        struct answer a = { 0 };
        ldap_pool_login(p, username, password, on_done, &a);
        assert_int_equal(a.calls, 1);   /* before ldap_pool_login() returned */
        assert_int_equal(a.status, want);
        assert_null(a.user);
}

struct fixture {
        char dir[64], password_file[96];
        struct daemon_config cfg;
};

static int setup(void **state) {
        struct fixture *fx = calloc(1, sizeof *fx);
        strcpy(fx->dir, "/tmp/wwsf-ldap-XXXXXX");
        assert_non_null(mkdtemp(fx->dir));
        snprintf(fx->password_file, sizeof fx->password_file, "%s/password", fx->dir);
        struct daemon_config *c = &fx->cfg;
        c->ldap_enabled = true;
        /* A server nobody will reach: nothing in these tests connects. */
        c->ldap_uris[0] = "ldap://127.0.0.1:9/";
        c->n_ldap_uris = 1;
        c->ldap_base_dn = "dc=example,dc=com";
        c->ldap_user_attribute = "uid";
        c->ldap_impu_attribute = "imsPublicIdentity";
        c->ldap_impi_attribute = "imsPrivateIdentity";
        c->ldap_group_attribute = "memberOf";
        c->ldap_timeout_ms = 1000;
        c->ldap_connections = 2;
        *state = fx;
        return 0;
}

static int teardown(void **state) {
        struct fixture *fx = *state;
        unlink(fx->password_file);
        rmdir(fx->dir);
        free(fx);
        return 0;
}

static void write_file(const char *path, const char *content) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(content, f);
        fclose(f);
}

static void test_login_refusals_without_ldap(void **state) {
        struct fixture *fx = *state;
        struct ldap_pool *p = NULL;
        write_file(fx->password_file, "wwsf-service\n");
        fx->cfg.ldap_bind_dn = "cn=wwsf,dc=example,dc=com";
        fx->cfg.ldap_bind_password_file = fx->password_file;
        assert_int_equal(ldap_pool_new(&fx->cfg, &p), 0);

        char longest[257];
        memset(longest, 'a', 256);
        longest[256] = '\0';
        expect_answer_now(p, "alice", "", LDAP_LOGIN_INVALID);          /* an unauthenticated bind "succeeds" */
        expect_answer_now(p, "", "secret", LDAP_LOGIN_INVALID);
        expect_answer_now(p, longest, "secret", LDAP_LOGIN_INVALID);    /* 256 bytes */
        expect_answer_now(p, "ali\x01" "ce", "secret", LDAP_LOGIN_INVALID);
        expect_answer_now(p, "alice\n", "secret", LDAP_LOGIN_INVALID);
        expect_answer_now(p, "alice\x7f", "secret", LDAP_LOGIN_INVALID);
        expect_answer_now(p, "\x1f", "secret", LDAP_LOGIN_INVALID);
        expect_answer_now(p, NULL, "secret", LDAP_LOGIN_INVALID);
        expect_answer_now(p, "alice", NULL, LDAP_LOGIN_INVALID);
        ldap_pool_login(p, "alice", "secret", NULL, NULL);              /* no callback: ignored */
        ldap_pool_free(p);

        /* No pool: what is invalid stays invalid, the rest is unavailable. */
        expect_answer_now(NULL, "alice", "", LDAP_LOGIN_INVALID);
        expect_answer_now(NULL, "alice", "secret", LDAP_LOGIN_UNAVAILABLE);
        ldap_pool_free(NULL);
}

static void test_pool_new_checks_password_file(void **state) {
        struct fixture *fx = *state;
        struct ldap_pool *p = NULL;
        fx->cfg.ldap_bind_dn = "cn=wwsf,dc=example,dc=com";
        fx->cfg.ldap_bind_password_file = fx->password_file;

        assert_int_equal(ldap_pool_new(&fx->cfg, &p), -ENOENT);
        write_file(fx->password_file, "\n");
        assert_int_equal(ldap_pool_new(&fx->cfg, &p), -EINVAL);        /* empty once the newline goes */
        char big[5000];
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        write_file(fx->password_file, big);
        assert_int_equal(ldap_pool_new(&fx->cfg, &p), -EFBIG);
        write_file(fx->password_file, "wwsf-service\r\n");
        assert_int_equal(ldap_pool_new(&fx->cfg, &p), 0);
        ldap_pool_free(p);

        /* Anonymous search: no file needed. */
        fx->cfg.ldap_bind_dn = NULL;
        fx->cfg.ldap_bind_password_file = NULL;
        p = NULL;
        assert_int_equal(ldap_pool_new(&fx->cfg, &p), 0);
        ldap_pool_free(p);

        fx->cfg.n_ldap_uris = 0;
        assert_int_equal(ldap_pool_new(&fx->cfg, &p), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_plain_values_unchanged),
                cmocka_unit_test(test_rfc4515_specials),
                cmocka_unit_test(test_injections),
                cmocka_unit_test(test_control_and_high_bytes),
                cmocka_unit_test(test_stops_at_nul),
                cmocka_unit_test(test_buffer_too_small),
                cmocka_unit_test(test_agrees_with_libldap),
                cmocka_unit_test_setup_teardown(test_login_refusals_without_ldap, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pool_new_checks_password_file, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
