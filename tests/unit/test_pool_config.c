/* The pool-config parser: what it accepts, and that every refusal names the
 * file, the line and the reason. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/parse.h"
#include "config/pool_config.h"

static char tmpdir[64];

static const char *write_ini(const char *name, const char *text) {
        static char path[160];
        snprintf(path, sizeof path, "%s/%s", tmpdir, name);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
        return path;
}

static const char sub_ok[] =
        "[subscription s]\n"          /* 1 */
        "owner = none\n"              /* 2 */
        "domain = ims.example.com\n"  /* 3 */
        "impi_mode = per-entry\n";    /* 4 */

static struct pool_config *load_one(const char *text, int expect) {
        const char *path = write_ini("t.ini", text);
        const char *files[] = { path };
        struct pool_config *cfg = NULL;
        int r = pool_config_load(files, 1, &cfg);
        if (expect == INT32_MIN)
                return cfg; /* the caller looks at the errors itself */
        if (r != expect)
                for (size_t i = 0; cfg && i < cfg->n_errors; i++)
                        fprintf(stderr, "  %s\n", cfg->errors[i]);
        assert_int_equal(r, expect);
        return cfg;
}

/* The config must be refused with an error at line `line` containing `what`. */
static void expect_error(const char *text, int line, const char *what) {
        struct pool_config *cfg = load_one(text, -EINVAL);
        char prefix[200];
        snprintf(prefix, sizeof prefix, "%s/t.ini:%d: ", tmpdir, line);
        bool found = false;
        for (size_t i = 0; i < cfg->n_errors; i++)
                if (strncmp(cfg->errors[i], prefix, strlen(prefix)) == 0 && strstr(cfg->errors[i], what))
                        found = true;
        if (!found) {
                fprintf(stderr, "expected '%s...%s'; got:\n", prefix, what);
                for (size_t i = 0; i < cfg->n_errors; i++)
                        fprintf(stderr, "  %s\n", cfg->errors[i]);
        }
        assert_true(found);
        pool_config_free(cfg);
}

static void test_good_config(void **state) {
        (void) state;
        char text[2048];
        snprintf(text, sizeof text,
                 "%s"
                 "; a comment\n"
                 "[pool p1]\n"
                 "subscription = s\n"
                 "kind = anonymous\n"
                 "lease_ttl = 5m\n"
                 "quarantine = 1h\n"
                 "max_per_holder = 3\n"
                 "impu_range = sip:+1555{0000000..9999999}@ims.example.com\n"
                 "impi_range = x{0000000..9999999}@ims.example.com\n"
                 "[pool p2]\n"
                 "subscription = s\n"
                 "kind = authenticated\n"
                 "lease_ttl = 60\n"
                 "quarantine = 60\n"
                 "entry = sip:a@ims.example.com a@ims.example.com\n"
                 "entry = tel:+1555 b@ims.example.com\n"
                 "[pool p3]\n"
                 "subscription = s\n"
                 "kind = anonymous\n"
                 "lease_ttl = 1d\n"
                 "quarantine = 2d\n"
                 "impu_wildcard = sip:w-![0-9]+!@ims.example.com\n"
                 "impi_wildcard = w-![0-9]+!@ims.example.com\n"
                 "size = 10\n"
                 "token_length = 6\n",
                 sub_ok);
        struct pool_config *cfg = load_one(text, 0);
        assert_int_equal(cfg->n_subs, 1);
        assert_string_equal(cfg->subs[0].sub.owner, "");
        assert_int_equal(cfg->subs[0].sub.impi_mode, IMPI_MODE_PER_ENTRY);
        assert_int_equal(cfg->n_pools, 3);

        const struct pool_config_pool *p1 = pool_config_find_pool(cfg, "p1");
        assert_non_null(p1);
        assert_int_equal(p1->def.source, POOL_SOURCE_RANGE);
        assert_int_equal(p1->def.size, 10000000);
        assert_int_equal(p1->def.lease_ttl, 300);
        assert_int_equal(p1->def.quarantine, 3600);
        assert_int_equal(p1->def.max_per_holder, 3);
        assert_ptr_equal(p1->subscription, &cfg->subs[0]);
        char buf[256];
        assert_true(pool_template_format_index(&p1->def.impu_tpl, 42, buf, sizeof buf) > 0);
        assert_string_equal(buf, "sip:+15550000042@ims.example.com");
        int64_t idx;
        const struct pool_template *t = &p1->def.impu_tpl;
        assert_true(pool_template_match_index(t, p1->def.size, "sip:+15559999999@ims.example.com", &idx));
        assert_int_equal(idx, 9999999);
        assert_false(pool_template_match_index(t, p1->def.size, "sip:+1555999999@ims.example.com", &idx));
        assert_false(pool_template_match_index(t, p1->def.size, "sip:+1555999999x@ims.example.com", &idx));

        const struct pool_config_pool *p2 = pool_config_find_pool(cfg, "p2");
        assert_int_equal(p2->def.source, POOL_SOURCE_LIST);
        assert_int_equal(p2->def.size, 2);
        assert_string_equal(p2->entries[1].impu, "tel:+1555");
        assert_int_equal(p2->entries[1].line, 20);
        assert_int_equal(p2->def.max_per_holder, 1);

        const struct pool_config_pool *p3 = pool_config_find_pool(cfg, "p3");
        assert_int_equal(p3->def.source, POOL_SOURCE_WILDCARD);
        assert_int_equal(p3->def.token_alphabet, TOKEN_ALPHABET_DIGITS);
        assert_int_equal(p3->def.token_length, 6);
        assert_string_equal(p3->def.impu_tpl.prefix, "sip:w-");
        assert_string_equal(p3->def.impu_tpl.regex, "[0-9]+");
        pool_config_free(cfg);
}

static void test_errors_name_line_and_reason(void **state) {
        (void) state;
        char text[2048];
        const char *pool_head =
                "[pool p]\n"                 /* 5 */
                "subscription = s\n"         /* 6 */
                "kind = anonymous\n"         /* 7 */
                "lease_ttl = 60\n"           /* 8 */
                "quarantine = 60\n";         /* 9 */
#define CASE(tail, line, what)                                          \
        do {                                                            \
                snprintf(text, sizeof text, "%s%s%s", sub_ok, pool_head, tail); \
                expect_error(text, line, what);                         \
        } while (0)

        CASE("colour = blue\n", 10, "unknown key 'colour'");
        CASE("impu_range = sip:+1{9..1}@ims.example.com\nimpi_range = a{1..9}@ims.example.com\n", 10,
             "FIRST is greater");
        CASE("impu_range = sip:+1{1..9}@ims.example.com\nimpi_range = a{1..10}@ims.example.com\n", 11,
             "same number of digits");
        CASE("impu_range = sip:+1{1..9}@ims.example.com\nimpi_range = a{10..20}@ims.example.com\n", 11,
             "has 11 identities");
        CASE("entry = sip:a@ims.example.com a@x\nentry = sip:a@ims.example.com b@x\n", 11, "listed twice");
        CASE("entry = sip:a@other.example.com a@x\n", 10, "not in the subscription's domain");
        CASE("entry = http://a a@x\n", 10, "not a sip:");
        CASE("entry = sip:a@ims.example.com a@x\ntoken_length = 8\n", 11, "only wildcard pools take a token_length");
        CASE("impu_range = sip:+1{1..9}@ims.example.com\nimpi_range = a{1..9}@ims.example.com\ntoken_length = 8\n", 12,
             "only wildcard pools take a token_length");
        CASE("entry = sip:a@x@ims.example.com a@x\n", 10, "not a sip:");
        CASE("entry = tel:5550100 a@x\n", 10, "phone-context");
        /* Spellings that the eP-CSCF takes for another IMPU's. */
        CASE("entry = sip:a@IMS.example.com a@x\n", 10, "host in capitals");
        CASE("entry = SIP:a@ims.example.com a@x\n", 10, "scheme in capitals");
        CASE("entry = sip:a@ims.example.com;user=phone a@x\n", 10, "parameters");
        CASE("entry = sip:a@ims.example.com?subject=x a@x\n", 10, "parameters");
        CASE("entry = tel:+15550100;ext=1 a@x\n", 10, "parameters");
        CASE("impu_range = sip:+1{1..9}@IMS.example.com\nimpi_range = a{1..9}@ims.example.com\n", 10,
             "host in capitals");
        CASE("impu_range = sip:+1{1..9}@ims.example.com;user=phone\nimpi_range = a{1..9}@ims.example.com\n", 10,
             "parameters");
        CASE("impu_wildcard = sip:w-![0-9]+!@ims.example.com;x\nsize = 5\nimpi_wildcard = w-![0-9]+!@x\n", 10,
             "parameters");
        CASE("entry = sip:a@ims.example.com\n", 10, "IMPI per entry");
        CASE("impu_wildcard = sip:w-![0-9]{3}x!@ims.example.com\nsize = 5\nimpi_wildcard = !.*!@x\n", 10,
             "no generated part");
        CASE("impu_wildcard = sip:w-!.*!@ims.example.com\nimpi_wildcard = !.*!@x\n", 5, "needs 'size'");
        CASE("impu_wildcard = sip:w-!.*!@ims.example.com\nimpi_wildcard = !.+!@x\nsize = 3\n", 11, "use the same");
        CASE("entry = sip:a@ims.example.com a@x\nimpu_range = sip:{1..2}@ims.example.com\n", 11,
             "exactly one IMPU source");
        CASE("this line has no equals sign\nentry = sip:a@ims.example.com a@x\n", 10, "expected 'key = value'");
        CASE("lease_ttl = 5\nentry = sip:a@ims.example.com a@x\n", 10, "given twice");
        CASE("max_per_holder = 0\nentry = sip:a@ims.example.com a@x\n", 10, "max_per_holder");
        CASE("entry = sip:a@ims.example.com a@x\n[pool q]\n", 11, "has no keys");
        CASE("entry = sip:a@ims.example.com a@x\n[bucket q]\nkey = v\n", 11, "unknown section");

        /* Quarantine shorter than the lease: reported at the quarantine line. */
        snprintf(text, sizeof text,
                 "%s[pool p]\nsubscription = s\nkind = anonymous\nlease_ttl = 1h\nquarantine = 10m\n"
                 "entry = sip:a@ims.example.com a@x\n",
                 sub_ok);
        expect_error(text, 9, "shorter than lease_ttl");

        /* Missing keys are reported at the section header. */
        snprintf(text, sizeof text, "%s[pool p]\nsubscription = s\nentry = sip:a@ims.example.com a@x\n", sub_ok);
        expect_error(text, 5, "missing key 'kind'");
        expect_error(text, 5, "missing key 'lease_ttl'");

        snprintf(text, sizeof text, "%s[pool p]\nsubscription = t\nkind = anonymous\nlease_ttl = 1\nquarantine = 1\n"
                 "entry = sip:a@ims.example.com a@x\n", sub_ok);
        expect_error(text, 6, "unknown subscription 't'");

        expect_error("[subscription s]\nowner = none\nimpi_mode = shared\n", 1, "missing key 'domain'");
        expect_error("[subscription s]\nowner = none\ndomain = a b\nimpi_mode = shared\n", 3, "not a domain name");
        expect_error("[subscription bad name!]\ndomain = x\n", 1, "name must be");
        expect_error("key = value\n", 1, "outside any section");

        /* Shared IMPI subscription with a pool lacking `impi`. */
        expect_error("[subscription s]\nowner = none\ndomain = ims.example.com\nimpi_mode = shared\n"
                     "[pool p]\nsubscription = s\nkind = anonymous\nlease_ttl = 1\nquarantine = 1\n"
                     "entry = sip:a@ims.example.com\n",
                     5, "set 'impi'");

        /* A line longer than inih can take. */
        char longline[400];
        memset(longline, 'x', sizeof longline);
        memcpy(longline, "owner = ", 8);
        longline[sizeof longline - 2] = '\n';
        longline[sizeof longline - 1] = '\0';
        snprintf(text, sizeof text, "[subscription s]\n%sdomain = ims.example.com\nimpi_mode = shared\n", longline);
        expect_error(text, 2, "longer than");
#undef CASE
}

/* Two range pools, the second's IMPU template given; whether config check
 * finds their IMPUs overlapping. */
static bool two_ranges_overlap(const char *first, const char *second) {
        char text[1024];
        snprintf(text, sizeof text,
                 "[subscription s]\nowner = none\ndomain = x.org\nimpi_mode = shared\n"
                 "[pool a]\nsubscription = s\nkind = anonymous\nlease_ttl = 1\nquarantine = 1\nimpi = a@x.org\n"
                 "impu_range = %s\n"
                 "[pool b]\nsubscription = s\nkind = anonymous\nlease_ttl = 1\nquarantine = 1\nimpi = b@x.org\n"
                 "impu_range = %s\n",
                 first, second);
        struct pool_config *cfg = load_one(text, INT32_MIN);
        bool overlap = false;
        for (size_t i = 0; i < cfg->n_errors; i++) {
                if (strstr(cfg->errors[i], "overlaps pool 'a'"))
                        overlap = true;
                else
                        fail_msg("unexpected: %s", cfg->errors[i]);
        }
        pool_config_free(cfg);
        return overlap;
}

static void test_range_overlap(void **state) {
        (void) state;
        assert_true(two_ranges_overlap("sip:+1555{00..99}@x.org", "sip:+1555{99..99}@x.org"));
        assert_false(two_ranges_overlap("sip:+1555{00..49}@x.org", "sip:+1555{50..99}@x.org"));
        /* Different widths and prefixes naming the same strings. */
        assert_true(two_ranges_overlap("sip:+1555{00..99}@x.org", "sip:+15550{0..9}@x.org"));
        assert_false(two_ranges_overlap("sip:+1555{00..49}@x.org", "sip:+15555{0..9}@x.org"));
        assert_true(two_ranges_overlap("sip:+1555{00..50}@x.org", "sip:+15555{0..9}@x.org"));
        /* A fixed digit after one number lines up inside the other. */
        assert_true(two_ranges_overlap("sip:+1{0..9}5@x.org", "sip:+1{00..99}@x.org"));
        assert_false(two_ranges_overlap("sip:+1{0..9}5@x.org", "sip:+1{00..04}@x.org"));
        assert_false(two_ranges_overlap("sip:+1{0..9}5@x.org", "sip:+1{10..14}@x.org"));
        assert_true(two_ranges_overlap("sip:+1{0..9}5@x.org", "sip:+1{15..15}@x.org"));
        /* Different lengths, or a letter where the other has digits: never. */
        assert_false(two_ranges_overlap("sip:+1{0..9}@x.org", "sip:+1{00..99}@x.org"));
        assert_false(two_ranges_overlap("sip:a{0..9}@x.org", "sip:{00..99}@x.org"));
        /* A host in capitals, which the eP-CSCF takes for x.org, is refused
         * before any overlap is looked for. */
        char text[1024];
        snprintf(text, sizeof text,
                 "[subscription s]\nowner = none\ndomain = x.org\nimpi_mode = shared\n"
                 "[pool b]\nsubscription = s\nkind = anonymous\nlease_ttl = 1\nquarantine = 1\nimpi = b@x.org\n"
                 "impu_range = sip:+1{5..5}@X.ORG\n");
        expect_error(text, 11, "host in capitals");
}

static void test_cross_file(void **state) {
        (void) state;
        char a[160], b[160];
        snprintf(a, sizeof a, "%s", write_ini("a.ini", "[subscription s]\nowner = acme\ndomain = ims.example.com\n"
                                                        "impi_mode = per-entry\n"
                                                        "[pool one]\nsubscription = s\nkind = anonymous\n"
                                                        "lease_ttl = 1\nquarantine = 1\n"
                                                        "impu_range = sip:+1{100..199}@ims.example.com\n"
                                                        "impi_range = a{100..199}@x\n"));
        snprintf(b, sizeof b, "%s", write_ini("b.ini", "[pool two]\nsubscription = s\nkind = anonymous\n"
                                                        "lease_ttl = 1\nquarantine = 1\n"
                                                        "impu_range = sip:+1{150..249}@ims.example.com\n"
                                                        "impi_range = b{150..249}@x\n"
                                                        "[pool three]\nsubscription = s\nkind = anonymous\n"
                                                        "lease_ttl = 1\nquarantine = 1\n"
                                                        "entry = sip:+1120@ims.example.com c@x\n"));
        const char *files[] = { a, b };
        struct pool_config *cfg;
        assert_int_equal(pool_config_load(files, 2, &cfg), -EINVAL);
        bool overlap = false, inside = false;
        for (size_t i = 0; i < cfg->n_errors; i++) {
                if (strstr(cfg->errors[i], "b.ini:1: pool 'two': its IMPU range overlaps pool 'one'"))
                        overlap = true;
                if (strstr(cfg->errors[i], "b.ini:13: entry: 'sip:+1120@ims.example.com' is inside the IMPU range"))
                        inside = true;
        }
        assert_true(overlap);
        assert_true(inside);
        assert_string_equal(cfg->pools[1].subscription->sub.owner, "acme");
        pool_config_free(cfg);

        const char *missing[] = { "/nonexistent/x.ini" };
        assert_int_equal(pool_config_load(missing, 1, &cfg), -ENOENT);
        assert_non_null(strstr(cfg->errors[0], "/nonexistent/x.ini:0: cannot open"));
        pool_config_free(cfg);
}

static void test_shipped_examples(void **state) {
        (void) state;
        /* Every file under pool-config/ is valid alone and all together. */
        static const char *const names[] = { "operator.ini", "portal-acme.ini", "large-range.ini" };
        char paths[3][512];
        const char *files[3];
        for (int i = 0; i < 3; i++) {
                snprintf(paths[i], sizeof paths[i], "%s/%s", POOL_CONFIG_DIR, names[i]);
                files[i] = paths[i];
                struct pool_config *cfg;
                int r = pool_config_load(&files[i], 1, &cfg);
                for (size_t k = 0; k < cfg->n_errors; k++)
                        fprintf(stderr, "  %s\n", cfg->errors[k]);
                assert_int_equal(r, 0);
                pool_config_free(cfg);
        }
        struct pool_config *cfg;
        assert_int_equal(pool_config_load(files, 3, &cfg), 0);
        const struct pool_config_pool *big = pool_config_find_pool(cfg, "national");
        assert_non_null(big);
        assert_int_equal(big->def.size, 10000000);
        pool_config_free(cfg);
}

static void test_parsers(void **state) {
        (void) state;
        int64_t v;
        assert_int_equal(wwsf_parse_duration("90", &v), 0);
        assert_int_equal(v, 90);
        assert_int_equal(wwsf_parse_duration("15m", &v), 0);
        assert_int_equal(v, 900);
        assert_int_equal(wwsf_parse_duration("2h", &v), 0);
        assert_int_equal(v, 7200);
        assert_int_equal(wwsf_parse_duration("1d", &v), 0);
        assert_int_equal(v, 86400);
        assert_int_equal(wwsf_parse_duration("1w", &v), -EINVAL);
        assert_int_equal(wwsf_parse_duration("-1", &v), -EINVAL);
        assert_int_equal(wwsf_parse_duration("", &v), -EINVAL);
        assert_int_equal(wwsf_parse_duration("99999999999d", &v), -ERANGE);
        assert_true(wwsf_is_public_identity("sip:alice@ims.example.com"));
        assert_true(wwsf_is_public_identity("tel:+15550100"));
        assert_false(wwsf_is_public_identity("sip:@ims.example.com"));
        assert_false(wwsf_is_public_identity("sip:a b@ims.example.com"));
        assert_false(wwsf_is_public_identity("mailto:a@b"));
        /* RFC 3261 section 25.1 and RFC 3966 section 3. */
        static const char *const good[] = {
                "sips:alice@ims.example.com", "SIP:Alice@IMS.example.com", "sip:+1-555;x=1@ims.example.com",
                "sip:a%40b@ims.example.com", "sip:a@192.0.2.1", "sip:a@[2001:db8::1]:5061",
                "sip:a@ims.example.com:5060;transport=tcp;lr", "sip:a@ims.example.com?subject=x&h=",
                "sip:a@ims.example.com.", "tel:+1-555-010-0199", "tel:+15550100;ext=12",
                "tel:7042;phone-context=example.com", "tel:*31#;phone-context=+1555",
        };
        static const char *const bad[] = {
                "sip:", "sip:a@", "sip:a", "sip:evil@x@ims.example.com", "sip:<a>@ims.example.com",
                "sip:a\"b@ims.example.com", "sip:a@ims.example.com>", "<sip:a@ims.example.com>",
                "sip:a%zz@ims.example.com", "sip:a%4@ims.example.com", "sip:a:pw@ims.example.com",
                "sip:a@ims..example.com", "sip:a@-ims.example.com", "sip:a@ims-.example.com",
                "sip:a@ims_1.example.com", "sip:a@ims.example.com:", "sip:a@ims.example.com:99999",
                "sip:a@ims.example.com:5060x", "sip:a@[zz::1]", "sip:a@[2001:db8::1", "sip:a@ims.example.com;",
                "sip:a@ims.example.com;=v", "sip:a@ims.example.com?", "sip:a@ims.example.com?h",
                "sip:\xc3\xa9@ims.example.com", "tel:", "tel:+", "tel:+-.()", "tel:15550100", "tel:+1-555-abc",
                "tel:+1555*0100", "tel:+15550100@ims.example.com", "tel:+15550100;", "tel:+15550100;a_b=1",
                "tel:+1555?x=y",
        };
        const char *why;
        for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
                if (!wwsf_public_identity_check(good[i], &why))
                        fail_msg("refused %s: %s", good[i], why);
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                why = NULL;
                if (wwsf_public_identity_check(bad[i], &why))
                        fail_msg("accepted %s", bad[i]);
                assert_non_null(why);
        }
        assert_true(wwsf_is_private_identity("a@ims.example.com"));
        assert_false(wwsf_is_private_identity("a@b@c"));
        assert_true(wwsf_is_ip_address("::1"));
        assert_false(wwsf_is_ip_address("300.1.1.1"));

        char token[POOL_TOKEN_MAX + 1];
        assert_int_equal(pool_token_random(TOKEN_ALPHABET_DIGITS, 20, token), 0);
        assert_int_equal(strspn(token, "0123456789"), 20);
        assert_int_equal(pool_token_random(TOKEN_ALPHABET_BASE32, 32, token), 0);
        assert_int_equal(strspn(token, "abcdefghijklmnopqrstuvwxyz234567"), 32);
        assert_int_equal(pool_token_random(TOKEN_ALPHABET_BASE32, 33, token), -EINVAL);

        /* The pool model's words read back as the values they name. */
        enum pool_kind kind = POOL_KIND_AUTHENTICATED;
        assert_int_equal(pool_kind_from_string(pool_kind_to_string(POOL_KIND_ANONYMOUS), &kind), 0);
        assert_int_equal(kind, POOL_KIND_ANONYMOUS);
        assert_int_equal(pool_kind_from_string("Anonymous", &kind), -EINVAL);
        assert_int_equal(pool_kind_from_string(NULL, &kind), -EINVAL);
        for (enum pool_source s = POOL_SOURCE_LIST, got; s <= POOL_SOURCE_WILDCARD; s++) {
                assert_int_equal(pool_source_from_string(pool_source_to_string(s), &got), 0);
                assert_int_equal(got, s);
        }
        enum impi_mode mode;
        assert_int_equal(impi_mode_from_string("per-entry", &mode), 0);
        assert_int_equal(mode, IMPI_MODE_PER_ENTRY);
        assert_string_equal(impi_mode_to_string(IMPI_MODE_SHARED), "shared");
        enum token_alphabet alphabet;
        assert_int_equal(token_alphabet_from_string("digits", &alphabet), 0);
        assert_int_equal(alphabet, TOKEN_ALPHABET_DIGITS);
        assert_int_equal(token_alphabet_from_string("hex", &alphabet), -EINVAL);
}

static int group_setup(void **state) {
        (void) state;
        strcpy(tmpdir, "/tmp/wwsf-cfg-XXXXXX");
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state) {
        (void) state;
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_good_config),
                cmocka_unit_test(test_errors_name_line_and_reason),
                cmocka_unit_test(test_range_overlap),
                cmocka_unit_test(test_cross_file),
                cmocka_unit_test(test_shipped_examples),
                cmocka_unit_test(test_parsers),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
