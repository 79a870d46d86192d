/* GET / and everything below it that no other route takes: the WIC's files
 * under web_root. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "wwsfd/api/api.h"
#include "wwsfd/daemon.h"

static const struct {
        const char *ext, *type;
} mime_types[] = {
        { ".html", "text/html; charset=utf-8" }, { ".js", "text/javascript; charset=utf-8" },
        { ".mjs", "text/javascript; charset=utf-8" }, { ".css", "text/css; charset=utf-8" },
        { ".json", "application/json" }, { ".map", "application/json" }, { ".svg", "image/svg+xml" },
        { ".png", "image/png" }, { ".ico", "image/x-icon" }, { ".txt", "text/plain; charset=utf-8" },
        { ".wav", "audio/wav" }, { ".ogg", "audio/ogg" }, { ".woff2", "font/woff2" },
};

static const char *mime_type(const char *path) {
        const char *dot = strrchr(path, '.');
        if (dot && !strchr(dot, '/'))
                for (size_t i = 0; i < sizeof mime_types / sizeof mime_types[0]; i++)
                        if (strcasecmp(dot, mime_types[i].ext) == 0)
                                return mime_types[i].type;
        return "application/octet-stream";
}

/* Paths with "..", "." or empty segments, backslashes or control bytes are
 * refused outright (the URL is already %-decoded by libmicrohttpd); the rest
 * are opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) below the web
 * root's directory descriptor, so nothing outside it can be reached, not even
 * through a symbolic link inside it. */
static bool safe_path(const char *url) {
        if (url[0] != '/' || strlen(url) > 1024)
                return false;
        for (const char *p = url; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f || *p == '\\')
                        return false;
        for (const char *seg = url + 1; *seg;) {
                size_t n = strcspn(seg, "/");
                if (n == 0 && seg[n] == '/')
                        return false;
                if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
                        return false;
                seg += n;
                if (*seg == '/')
                        seg++;
        }
        return true;
}

/* If-None-Match (RFC 9110 section 13.1.2): "*", or a list of tags compared
 * weakly (W/ ignored). */
static bool etag_matches(const char *header, const char *etag) {
        size_t elen = strlen(etag);
        for (const char *p = header; *p;) {
                while (*p == ' ' || *p == '\t' || *p == ',')
                        p++;
                if (*p == '*')
                        return true;
                if (strncmp(p, "W/", 2) == 0)
                        p += 2;
                size_t n = strcspn(p, ",");
                while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
                        n--;
                if (n == elen && strncmp(p, etag, n) == 0)
                        return true;
                p += strcspn(p, ",");
        }
        return false;
}

enum MHD_Result api_static(struct request *r, const char *url) {
        struct wwsfd *d = r->d;
        if (!safe_path(url))
                return reply_error(r, WWSF_E_NOT_FOUND, "no such file");
        char path[1100];
        size_t n = strlen(url);
        snprintf(path, sizeof path, "%s%s", url + 1, n == 1 || url[n - 1] == '/' ? "index.html" : "");
        struct open_how how = {
                .flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        int fd = (int) syscall(SYS_openat2, d->web_root_fd, path, &how, sizeof how);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                if (fd >= 0)
                        close(fd);
                return reply_error(r, WWSF_E_NOT_FOUND, "no such file");
        }
        char etag[64];
        snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long) st.st_size,
                 (unsigned long long) st.st_mtim.tv_sec * 1000000000ull + (unsigned long long) st.st_mtim.tv_nsec);
        const char *inm = request_header(r, "If-None-Match");
        struct MHD_Response *resp;
        unsigned status = 200;
        if (inm && etag_matches(inm, etag)) {
                close(fd);
                resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
                status = 304;
        } else
                resp = MHD_create_response_from_fd((size_t) st.st_size, fd);
        if (!resp) {
                if (status == 200)
                        close(fd);
                return MHD_NO;
        }
        const char *type = mime_type(path);
        MHD_add_response_header(resp, "Content-Type", type);
        MHD_add_response_header(resp, "ETag", etag);
        /* Pages revalidate every time (they name the current scripts); the
         * rest may be cached for an hour. */
        bool html = strncmp(type, "text/html", 9) == 0;
        MHD_add_response_header(resp, "Cache-Control", html ? "no-cache" : "public, max-age=3600");
        add_security_headers(r->d, resp, html);
        enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
        MHD_destroy_response(resp);
        return ret;
}
