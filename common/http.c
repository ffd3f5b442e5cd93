/*
 * http.c: the small HTTP listener every daemon runs for Prometheus (/metrics)
 * and for people and hamon's checks (/status, JSON).  GET and HEAD only.
 */
#include <sys/types.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "common.h"

#define HTTPD_BACKLOG		64
#define HTTPD_MAX_HEADERS	8192	/* bytes of request line and headers */
#define HTTPD_MAX_BODY		4096	/* nobody needs to send us one */
#define HTTPD_TIMEOUT_SEC	10	/* slow or idle clients are cut off */

#define HTTPD_METRICS_TYPE	"text/plain; version=0.0.4; charset=utf-8"
#define HTTPD_STATUS_TYPE	"application/json"

struct httpd {
	struct evhttp	*http;
	struct metrics	*metrics;
	httpd_status_cb	 status;
	void		*arg;
};

static void
httpd_reply(struct evhttp_request *req, int code, const char *reason,
    const char *type, const char *body, size_t len)
{
	struct evkeyvalq	*h = evhttp_request_get_output_headers(req);
	struct evbuffer		*out = evbuffer_new();
	char			 clen[32];

	if (out == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (code == 405)
		evhttp_add_header(h, "Allow", "GET, HEAD");
	/* Always a length, so HTTP/1.0 clients too can tell a cut reply. */
	snprintf(clen, sizeof(clen), "%zu", len);
	evhttp_add_header(h, "Content-Length", clen);
	/* HEAD gets the headers of GET and no body. */
	if (evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)
		evbuffer_add(out, body, len);
	evhttp_send_reply(req, code, reason, out);
	evbuffer_free(out);
}

static void
httpd_metrics(struct httpd *h, struct evhttp_request *req)
{
	struct buf	b;

	buf_init(&b);
	if (h->metrics != NULL)
		metrics_render(h->metrics, &b);
	httpd_reply(req, HTTP_OK, "OK", HTTPD_METRICS_TYPE,
	    b.data != NULL ? b.data : "", b.len);
	buf_free(&b);
}

static void
httpd_status(struct httpd *h, struct evhttp_request *req)
{
	struct json	j;

	json_init(&j);
	if (h->status != NULL)
		h->status(&j, h->arg);
	if (j.b.len == 0)
		buf_adds(&j.b, "{}");
	buf_addc(&j.b, '\n');
	httpd_reply(req, HTTP_OK, "OK", HTTPD_STATUS_TYPE, json_text(&j), j.b.len);
	json_free(&j);
}

static void
httpd_request_cb(struct evhttp_request *req, void *arg)
{
	struct httpd		*h = arg;
	const struct evhttp_uri	*uri = evhttp_request_get_evhttp_uri(req);
	const char		*path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type	 cmd = evhttp_request_get_command(req);
	static const char	 not_allowed[] = "method not allowed\n";
	static const char	 not_found[] = "not found: try /metrics or /status\n";

	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD)
		httpd_reply(req, 405, "Method Not Allowed", "text/plain",
		    not_allowed, sizeof(not_allowed) - 1);
	else if (path != NULL && strcmp(path, "/metrics") == 0)
		httpd_metrics(h, req);
	else if (path != NULL && strcmp(path, "/status") == 0)
		httpd_status(h, req);
	else
		httpd_reply(req, HTTP_NOTFOUND, "Not Found", "text/plain",
		    not_found, sizeof(not_found) - 1);
}

struct httpd *
httpd_start(struct event_base *base, const struct net_addr *addr,
    struct metrics *metrics, httpd_status_cb status, void *arg, char *err,
    size_t errlen)
{
	struct httpd	*h = xcalloc(1, sizeof(*h));
	int		 fd;

	h->metrics = metrics;
	h->status = status;
	h->arg = arg;
	if ((fd = net_listen(addr, HTTPD_BACKLOG, err, errlen)) == -1)
		goto fail;
	if ((h->http = evhttp_new(base)) == NULL) {
		snprintf(err, errlen, "%s: cannot create the HTTP server", addr->text);
		close(fd);
		goto fail;
	}
	if (evhttp_accept_socket_with_handle(h->http, fd) == NULL) {
		snprintf(err, errlen, "%s: cannot accept on the HTTP socket",
		    addr->text);
		close(fd);
		goto fail;
	}
	evhttp_set_max_headers_size(h->http, HTTPD_MAX_HEADERS);
	evhttp_set_max_body_size(h->http, HTTPD_MAX_BODY);
	evhttp_set_timeout(h->http, HTTPD_TIMEOUT_SEC);
	/* Every method reaches us, so all but GET and HEAD get 405, not 501. */
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
	    EVHTTP_REQ_PATCH);
	evhttp_set_gencb(h->http, httpd_request_cb, h);
	return h;
 fail:
	httpd_stop(h);
	return NULL;
}

void
httpd_stop(struct httpd *h)
{
	if (h == NULL)
		return;
	if (h->http != NULL)
		evhttp_free(h->http);
	free(h);
}
