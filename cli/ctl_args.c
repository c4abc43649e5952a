// SPDX-License-Identifier: Apache-2.0
/*
 * shoalctl's command line. One option table for every verb, parsed with GNU getopt_long in
 * its permuting mode so flags may come before or after the verb and its arguments (as kubectl
 * allows: `shoalctl get pods -n kube-system`); each verb then refuses the flags it does not
 * take, naming them. argv is reordered in place; o->args points into it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

enum {
	OPT_SERVER = 256,
	OPT_TOKEN,
	OPT_FIELD_SELECTOR,
	OPT_REPLICAS,
	OPT_GRACE,
	OPT_CA,
	OPT_INSECURE,
	OPT_IGNORE_NOT_FOUND,
	OPT_TIMEOUT,
	OPT_REVISION,
	OPT_WAIT,
	OPT_PREVIOUS,
	OPT_NODE,
	OPT_FOLLOW,
};

static const struct option ctl_long_opts[] = {
	{ "server", required_argument, NULL, OPT_SERVER },
	{ "token", required_argument, NULL, OPT_TOKEN },
	{ "namespace", required_argument, NULL, 'n' },
	{ "all-namespaces", no_argument, NULL, 'A' },
	{ "filename", required_argument, NULL, 'f' },
	{ "selector", required_argument, NULL, 'l' },
	{ "field-selector", required_argument, NULL, OPT_FIELD_SELECTOR },
	{ "output", required_argument, NULL, 'o' },
	{ "watch", no_argument, NULL, 'w' },
	{ "replicas", required_argument, NULL, OPT_REPLICAS },
	{ "grace-period", required_argument, NULL, OPT_GRACE },
	{ "certificate-authority", required_argument, NULL, OPT_CA },
	{ "insecure-skip-tls-verify", no_argument, NULL, OPT_INSECURE },
	{ "ignore-not-found", no_argument, NULL, OPT_IGNORE_NOT_FOUND },
	{ "request-timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "to-revision", required_argument, NULL, OPT_REVISION },
	{ "revision", required_argument, NULL, OPT_REVISION },
	{ "timeout", required_argument, NULL, OPT_WAIT },
	{ "container", required_argument, NULL, 'c' },
	{ "follow", no_argument, NULL, OPT_FOLLOW },
	{ "previous", no_argument, NULL, OPT_PREVIOUS },
	{ "node", required_argument, NULL, OPT_NODE },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int arg_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int arg_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int parse_long(const char *s, long min, long *out)
{
	char *end;
	long v;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Seconds from "30", "30s", "2m". */
static int parse_seconds(const char *s, long *out)
{
	char *end;
	long v;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || v < 0)
		return -EINVAL;
	if (*end == '\0' || strcmp(end, "s") == 0)
		*out = v;
	else if (strcmp(end, "m") == 0)
		*out = v * 60;
	else if (strcmp(end, "h") == 0)
		*out = v * 3600;
	else
		return -EINVAL;
	return 0;
}

static const struct {
	const char *name;
	unsigned allowed;
} ctl_verbs[] = {
	{ "apply", CTL_OPT_FILE | CTL_OPT_TIMEOUT },
	{ "get", CTL_OPT_SELECTOR | CTL_OPT_FIELD_SELECTOR | CTL_OPT_OUTPUT | CTL_OPT_WATCH |
			 CTL_OPT_ALL_NS | CTL_OPT_IGNORE_NOT_FOUND | CTL_OPT_TIMEOUT },
	{ "watch", CTL_OPT_SELECTOR | CTL_OPT_FIELD_SELECTOR | CTL_OPT_OUTPUT | CTL_OPT_ALL_NS |
			   CTL_OPT_TIMEOUT },
	{ "describe", CTL_OPT_TIMEOUT },
	{ "delete", CTL_OPT_FILE | CTL_OPT_GRACE | CTL_OPT_IGNORE_NOT_FOUND | CTL_OPT_SELECTOR |
			    CTL_OPT_TIMEOUT },
	{ "scale", CTL_OPT_REPLICAS | CTL_OPT_TIMEOUT },
	{ "rollout", CTL_OPT_REVISION | CTL_OPT_WAIT | CTL_OPT_TIMEOUT },
	{ "logs", CTL_OPT_CONTAINER | CTL_OPT_FOLLOW | CTL_OPT_PREVIOUS | CTL_OPT_TIMEOUT },
	{ "dp", CTL_OPT_NODE | CTL_OPT_TIMEOUT },
};

static const char *opt_name(unsigned bit)
{
	switch (bit) {
	case CTL_OPT_FILE:
		return "-f/--filename";
	case CTL_OPT_SELECTOR:
		return "-l/--selector";
	case CTL_OPT_FIELD_SELECTOR:
		return "--field-selector";
	case CTL_OPT_OUTPUT:
		return "-o/--output";
	case CTL_OPT_WATCH:
		return "-w/--watch";
	case CTL_OPT_REPLICAS:
		return "--replicas";
	case CTL_OPT_GRACE:
		return "--grace-period";
	case CTL_OPT_ALL_NS:
		return "-A/--all-namespaces";
	case CTL_OPT_IGNORE_NOT_FOUND:
		return "--ignore-not-found";
	case CTL_OPT_TIMEOUT:
		return "--request-timeout";
	case CTL_OPT_REVISION:
		return "--to-revision/--revision";
	case CTL_OPT_WAIT:
		return "--timeout";
	case CTL_OPT_CONTAINER:
		return "-c/--container";
	case CTL_OPT_FOLLOW:
		return "-f/--follow";
	case CTL_OPT_PREVIOUS:
		return "--previous";
	case CTL_OPT_NODE:
		return "--node";
	}
	return "?";
}

/* The verb, found before parsing: the first argument that is neither an option nor an
 * option's value. `logs` reads -f as --follow (kubectl's meaning), every other verb as
 * --filename. */
static const char *ctl_find_verb(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--"))
			return i + 1 < argc ? argv[i + 1] : NULL;
		if (!strncmp(a, "--", 2)) {
			for (const struct option *p = ctl_long_opts; p->name; p++)
				if (!strcmp(a + 2, p->name) && p->has_arg == required_argument)
					i++;
			continue;
		}
		if (a[0] == '-' && a[1]) {
			/* a short option with its value in the next argument */
			if (!a[2] && strchr("nfloc", a[1]))
				i++;
			continue;
		}
		return a;
	}
	return NULL;
}

int ctl_parse_args(int argc, char **argv, struct ctl_opts *o, char *err, size_t errlen)
{
	const char *pre_verb = ctl_find_verb(argc, argv);
	bool logs = pre_verb && !strcmp(pre_verb, "logs");
	const char *env;
	int ch, i;
	unsigned allowed = 0;
	bool known = false;

	memset(o, 0, sizeof(*o));
	o->replicas = -1;
	o->grace = -1;
	o->timeout_s = -1;
	env = getenv("SHOAL_SERVER");
	o->server = env && *env ? env : CTL_DEFAULT_SERVER;
	env = getenv("SHOAL_TOKEN");
	o->token = env && *env ? env : NULL;
	env = getenv("SHOAL_NAMESPACE");
	o->ns = env && *env ? env : "default";

	optind = 0; /* GNU: full reinitialisation, so tests may parse several times */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, logs ? ":n:Afc:l:o:wh" : ":n:Af:c:l:o:wh",
				 ctl_long_opts, NULL)) != -1) {
		switch (ch) {
		case OPT_SERVER:
			o->server = optarg;
			break;
		case OPT_TOKEN:
			o->token = optarg;
			break;
		case 'n':
			if (!*optarg)
				return arg_err(err, errlen, "-n needs a namespace");
			o->ns = optarg;
			o->ns_given = true;
			break;
		case 'A':
			o->all_ns = true;
			o->given |= CTL_OPT_ALL_NS;
			break;
		case 'f':
			if (logs) {
				o->follow = true;
				o->given |= CTL_OPT_FOLLOW;
				break;
			}
			if (o->nfiles >= CTL_MAX_FILES)
				return arg_err(err, errlen, "at most %d -f options", CTL_MAX_FILES);
			o->files[o->nfiles++] = optarg;
			o->given |= CTL_OPT_FILE;
			break;
		case 'l':
			o->selector = optarg;
			o->given |= CTL_OPT_SELECTOR;
			break;
		case OPT_FIELD_SELECTOR:
			o->field_selector = optarg;
			o->given |= CTL_OPT_FIELD_SELECTOR;
			break;
		case 'o':
			if (strcmp(optarg, "wide") == 0)
				o->output = CTL_OUT_WIDE;
			else if (strcmp(optarg, "json") == 0)
				o->output = CTL_OUT_JSON;
			else if (strcmp(optarg, "yaml") == 0)
				o->output = CTL_OUT_YAML;
			else if (strcmp(optarg, "name") == 0)
				o->output = CTL_OUT_NAME;
			else
				return arg_err(err, errlen,
					       "unknown output format \"%s\" (wide, json, yaml, name)",
					       optarg);
			o->given |= CTL_OPT_OUTPUT;
			break;
		case 'w':
			o->watch = true;
			o->given |= CTL_OPT_WATCH;
			break;
		case OPT_REPLICAS:
			if (parse_long(optarg, 0, &o->replicas))
				return arg_err(err, errlen,
					       "--replicas needs a non-negative integer, not \"%s\"",
					       optarg);
			o->given |= CTL_OPT_REPLICAS;
			break;
		case OPT_GRACE:
			if (parse_long(optarg, -1, &o->grace))
				return arg_err(err, errlen,
					       "--grace-period needs an integer number of seconds, not \"%s\"",
					       optarg);
			o->given |= CTL_OPT_GRACE;
			break;
		case OPT_CA:
			o->ca_file = optarg;
			break;
		case OPT_INSECURE:
			o->insecure = true;
			break;
		case OPT_IGNORE_NOT_FOUND:
			o->ignore_not_found = true;
			o->given |= CTL_OPT_IGNORE_NOT_FOUND;
			break;
		case OPT_TIMEOUT:
			if (parse_seconds(optarg, &o->timeout_s))
				return arg_err(err, errlen,
					       "--request-timeout needs seconds (30, 30s, 2m), not \"%s\"",
					       optarg);
			o->given |= CTL_OPT_TIMEOUT;
			break;
		case OPT_REVISION:
			if (parse_long(optarg, 0, &o->revision))
				return arg_err(err, errlen,
					       "--to-revision needs a revision number, not \"%s\"",
					       optarg);
			o->given |= CTL_OPT_REVISION;
			break;
		case OPT_WAIT:
			if (parse_seconds(optarg, &o->wait_s))
				return arg_err(err, errlen,
					       "--timeout needs seconds (30, 30s, 2m), not \"%s\"",
					       optarg);
			o->given |= CTL_OPT_WAIT;
			break;
		case 'c':
			o->container = optarg;
			o->given |= CTL_OPT_CONTAINER;
			break;
		case OPT_FOLLOW:
			o->follow = true;
			o->given |= CTL_OPT_FOLLOW;
			break;
		case OPT_PREVIOUS:
			o->previous = true;
			o->given |= CTL_OPT_PREVIOUS;
			break;
		case OPT_NODE:
			o->node = optarg;
			o->given |= CTL_OPT_NODE;
			break;
		case 'h':
			o->help = true;
			break;
		case ':':
			return arg_err(err, errlen, "option %s needs a value",
				       optopt ? (char[]){ '-', (char)optopt, 0 } : argv[optind - 1]);
		case '?':
		default:
			if (optopt)
				return arg_err(err, errlen, "unknown option -%c", optopt);
			return arg_err(err, errlen, "unknown option %s", argv[optind - 1]);
		}
	}
	/* GNU getopt permutes argv: the positionals now follow optind, in their order. */
	if (optind < argc) {
		o->verb = argv[optind];
		o->args = argv + optind + 1;
		o->nargs = argc - optind - 1;
	}
	if (o->help || !o->verb)
		return 0;

	for (i = 0; i < (int)(sizeof(ctl_verbs) / sizeof(ctl_verbs[0])); i++) {
		if (strcmp(o->verb, ctl_verbs[i].name) == 0) {
			allowed = ctl_verbs[i].allowed;
			known = true;
		}
	}
	if (!known)
		return arg_err(err, errlen, "unknown command \"%s\"", o->verb);
	for (unsigned bit = 1; bit <= CTL_OPT_NODE; bit <<= 1)
		if ((o->given & bit) && !(allowed & bit))
			return arg_err(err, errlen, "%s does not take %s", o->verb, opt_name(bit));
	if (o->watch && o->output == CTL_OUT_NAME)
		return arg_err(err, errlen, "-w does not work with -o name");
	return 0;
}

void ctl_usage(FILE *f)
{
	fputs("usage: shoalctl [--server URL] [--token TOKEN] [-n NAMESPACE | -A] COMMAND ...\n"
	      "\n"
	      "commands:\n"
	      "  apply -f FILE|DIR|-           create or update the objects in manifests (YAML or JSON)\n"
	      "  get KIND [NAME] [-l SEL] [--field-selector SEL] [-o wide|json|yaml|name] [-w]\n"
	      "  watch KIND [NAME]             the same as get -w\n"
	      "  describe KIND NAME            fields, labels, conditions and events of an object\n"
	      "  delete KIND NAME... | -f FILE [--grace-period N] [--ignore-not-found]\n"
	      "  scale KIND NAME --replicas N\n"
	      "  rollout status|history|undo|pause|resume deployment/NAME\n"
	      "                                [--timeout 5m] [--to-revision N] [--revision N]\n"
	      "  logs POD [-c CONTAINER] [-f] [--previous]   a container's log, from its node's agent\n"
	      "  dp --node NODE                what the node's data plane holds (services, backends)\n"
	      "\n"
	      "options:\n"
	      "  --server URL      http://HOST:PORT, https://HOST:PORT or unix:/PATH\n"
	      "                    (default: $SHOAL_SERVER, then " CTL_DEFAULT_SERVER ")\n"
	      "  --token TOKEN     bearer token (default: $SHOAL_TOKEN)\n"
	      "  -n NAMESPACE      namespace (default: $SHOAL_NAMESPACE, then default);\n"
	      "                    -A: all namespaces\n"
	      "  --certificate-authority FILE, --insecure-skip-tls-verify   for https servers\n"
	      "  --request-timeout SECONDS   per request; for watches, how long to watch\n"
	      "\n"
	      "KIND is a resource (pods), singular (pod), short name (po) or kind (Pod);\n"
	      "KIND/NAME is accepted wherever KIND NAME is.\n",
	      f);
}
