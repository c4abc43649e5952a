// SPDX-License-Identifier: Apache-2.0
/*
 * The controllers shoald runs, in the order they start. Each lives in its own file
 * (ctrl_<name>.c) and is known here by its definition only.
 */
#include <stddef.h>

#include "ctrl.h"

const struct ctrl_def *const ctrl_builtin[] = {
	&ctrl_deployment,
	&ctrl_replicaset,
	&ctrl_endpointslice,
	&ctrl_daemonset,
	&ctrl_job,
	&ctrl_nodelifecycle,
	&ctrl_gc,
	&ctrl_namespace,
	NULL,
};
