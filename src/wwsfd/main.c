/* wwsfd: the WWSF's HTTPS token service. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/pool_config.h"
#include "wwsfd/daemon.h"
#include "wwsfd/log.h"

static void usage(FILE *f) {
        fputs("Usage: wwsfd --config FILE [--check]\n"
              "\n"
              "Serves the WWSF: logins and anonymous admission over HTTPS, IMPU leases,\n"
              "signed tokens, the JWKS and the WIC. Logs go to standard error.\n"
              "\n"
              "  --config FILE   the configuration (see pool-config/wwsfd.ini)\n"
              "  --check         validate the configuration and exit\n"
              "\n"
              "Signals: SIGHUP reloads the signing keys and the pool configuration;\n"
              "SIGTERM and SIGINT finish the requests in flight and stop.\n",
              f);
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "check", no_argument, NULL, 'k' },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        const char *config = NULL;
        bool check = false;
        int c;
        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
                switch (c) {
                case 'c': config = optarg; break;
                case 'k': check = true; break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        }
        if (!config || optind != argc) {
                usage(stderr);
                return 2;
        }

        struct daemon_config *cfg = NULL;
        int r = daemon_config_load(config, &cfg);
        if (!cfg) {
                fprintf(stderr, "wwsfd: cannot load %s: %s\n", config, strerror(-r));
                return 1;
        }
        struct pool_config *pc = NULL;
        if (r == 0)
                r = daemon_config_load_pools(cfg, &pc);
        for (size_t i = 0; i < cfg->n_errors; i++)
                fprintf(stderr, "%s\n", cfg->errors[i]);
        for (size_t i = 0; pc && i < pc->n_errors; i++)
                fprintf(stderr, "%s\n", pc->errors[i]);
        pool_config_free(pc);
        if (r < 0) {
                fprintf(stderr, "wwsfd: bad config: %s\n", config);
                daemon_config_free(cfg);
                return 1;
        }
        if (check) {
                printf("ok: %s\n", config);
                daemon_config_free(cfg);
                return 0;
        }

        /* Signals go to this thread only, through sigtimedwait(); every
         * thread started later inherits the mask. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        signal(SIGPIPE, SIG_IGN);

        struct wwsfd *d = NULL;
        r = wwsfd_start(cfg, &wwsf_clock_system, &d);
        if (r < 0) {
                log_error("cannot start");
                wwsfd_stop(d);
                daemon_config_free(cfg);
                return 1;
        }
        int64_t next_tick = wwsf_clock_now(&wwsf_clock_system) + cfg->reclaim_interval;
        for (;;) {
                struct timespec timeout = { .tv_sec = 1 };
                int sig = sigtimedwait(&set, NULL, &timeout);
                if (sig == SIGTERM || sig == SIGINT) {
                        log_info("%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
                        break;
                }
                if (sig == SIGHUP)
                        (void) wwsfd_reload(d);
                wwsfd_checkpoint(d);
                int64_t now = wwsf_clock_now(&wwsf_clock_system);
                if (now >= next_tick) {
                        wwsfd_tick(d);
                        next_tick = now + cfg->reclaim_interval;
                }
        }
        wwsfd_stop(d);
        log_info("stopped");
        daemon_config_free(cfg);
        return 0;
}
