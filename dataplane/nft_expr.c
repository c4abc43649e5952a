// SPDX-License-Identifier: Apache-2.0
/*
 * Expression helpers: each appends one nftables expression to a libnftnl rule, with the
 * register conventions of nft(8) (NFT_REG_1.. for values, NFT_REG32_00.. for the parts of a
 * concatenation), so that `nft list table inet shoal` prints the rules readably.
 */
#include "nft_int.h"

#include <arpa/inet.h>
#include <libnftnl/udata.h>
#include <linux/netfilter/nf_nat.h>
#include <stdio.h>
#include <string.h>

static struct nftnl_expr *nft_x(struct nftnl_rule *r, const char *name)
{
	struct nftnl_expr *e = nftnl_expr_alloc(name);
	/* libnftnl allocates with calloc; on failure the rule is left incomplete and the
	 * kernel rejects it, which the batch reports. */
	if (e)
		nftnl_rule_add_expr(r, e);
	return e;
}

void nft_x_payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len, uint32_t dreg)
{
	struct nftnl_expr *e = nft_x(r, "payload");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
}

void nft_x_meta(struct nftnl_rule *r, uint32_t key, uint32_t dreg)
{
	struct nftnl_expr *e = nft_x(r, "meta");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
}

void nft_x_meta_set(struct nftnl_rule *r, uint32_t key, uint32_t sreg)
{
	struct nftnl_expr *e = nft_x(r, "meta");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, sreg);
}

void nft_x_cmp(struct nftnl_rule *r, uint32_t sreg, uint32_t op, const void *data, uint32_t len)
{
	struct nftnl_expr *e = nft_x(r, "cmp");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, sreg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
}

void nft_x_bitwise(struct nftnl_rule *r, uint32_t sreg, uint32_t dreg, uint32_t len,
		   const void *mask, const void * xor)
{
	struct nftnl_expr *e = nft_x(r, "bitwise");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, sreg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, dreg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, xor, len);
}

void nft_x_imm_data(struct nftnl_rule *r, uint32_t dreg, const void *data, uint32_t len)
{
	struct nftnl_expr *e = nft_x(r, "immediate");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, dreg);
	nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, data, len);
}

void nft_x_verdict(struct nftnl_rule *r, int verdict, const char *chain)
{
	struct nftnl_expr *e = nft_x(r, "immediate");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)verdict);
	if (chain)
		nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain);
}

void nft_x_lookup(struct nftnl_rule *r, uint32_t sreg, uint32_t dreg, const char *set,
		  uint32_t set_id)
{
	struct nftnl_expr *e = nft_x(r, "lookup");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, sreg);
	if (dreg != NFT_NO_DREG)
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, dreg);
	nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
	if (set_id)
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set_id);
}

void nft_x_numgen(struct nftnl_rule *r, uint32_t dreg, uint32_t modulus, uint32_t offset)
{
	struct nftnl_expr *e = nft_x(r, "numgen");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_NG_DREG, dreg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_NG_MODULUS, modulus);
	nftnl_expr_set_u32(e, NFTNL_EXPR_NG_TYPE, NFT_NG_RANDOM);
	nftnl_expr_set_u32(e, NFTNL_EXPR_NG_OFFSET, offset);
}

void nft_x_hton32(struct nftnl_rule *r, uint32_t reg)
{
	struct nftnl_expr *e = nft_x(r, "byteorder");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_SREG, reg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_DREG, reg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_OP, NFT_BYTEORDER_HTON);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_LEN, 4);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_SIZE, 4);
}

void nft_x_dnat(struct nftnl_rule *r, uint32_t reg_addr, uint32_t reg_port)
{
	struct nftnl_expr *e = nft_x(r, "nat");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FAMILY, NFPROTO_IPV4);
	nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, reg_addr);
	nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN, reg_port);
	nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FLAGS,
			   NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED);
}

void nft_x_masq(struct nftnl_rule *r, uint32_t flags)
{
	struct nftnl_expr *e = nft_x(r, "masq");
	if (!e)
		return;
	if (flags)
		nftnl_expr_set_u32(e, NFTNL_EXPR_MASQ_FLAGS, flags);
}

void nft_x_reject(struct nftnl_rule *r)
{
	struct nftnl_expr *e = nft_x(r, "reject");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_ICMPX_UNREACH);
	nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE, NFT_REJECT_ICMPX_PORT_UNREACH);
}

void nft_x_fib_daddr_type(struct nftnl_rule *r, uint32_t dreg)
{
	struct nftnl_expr *e = nft_x(r, "fib");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, dreg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
	nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_DADDR);
}

void nft_x_fib_saddr_type(struct nftnl_rule *r, uint32_t dreg)
{
	struct nftnl_expr *e = nft_x(r, "fib");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, dreg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
	nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_SADDR);
}

void nft_x_ct_status(struct nftnl_rule *r, uint32_t dreg)
{
	struct nftnl_expr *e = nft_x(r, "ct");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATUS);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, dreg);
}

void nft_x_ct_state(struct nftnl_rule *r, uint32_t dreg)
{
	struct nftnl_expr *e = nft_x(r, "ct");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, dreg);
}

void nft_x_dynset_update(struct nftnl_rule *r, uint32_t sreg, const char *set, uint64_t timeout_ms)
{
	struct nftnl_expr *e = nft_x(r, "dynset");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SREG_KEY, sreg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_OP, NFT_DYNSET_OP_UPDATE);
	nftnl_expr_set_str(e, NFTNL_EXPR_DYNSET_SET_NAME, set);
	if (timeout_ms)
		nftnl_expr_set_u64(e, NFTNL_EXPR_DYNSET_TIMEOUT, timeout_ms);
}

void nft_x_match_cidr(struct nftnl_rule *r, uint32_t off, const struct nft_cidr *c, bool neq)
{
	uint32_t mask = c->prefix ? htonl(~0u << (32 - c->prefix)) : 0;
	uint32_t net = c->addr.s_addr & mask, zero = 0;

	nft_x_payload(r, NFT_PAYLOAD_NETWORK_HEADER, off, 4, NFT_REG_1);
	if (c->prefix < 32)
		nft_x_bitwise(r, NFT_REG_1, NFT_REG_1, 4, &mask, &zero);
	nft_x_cmp(r, NFT_REG_1, neq ? NFT_CMP_NEQ : NFT_CMP_EQ, &net, 4);
}

static void nft_udata_comment(uint8_t type, const char *comment,
			      void (*set)(void *obj, const void *data, uint32_t len), void *obj)
{
	struct nftnl_udata_buf *ud = nftnl_udata_buf_alloc(NFTNL_UDATA_COMMENT_MAXLEN + 16);
	if (!ud)
		return;
	char tmp[NFTNL_UDATA_COMMENT_MAXLEN];
	snprintf(tmp, sizeof(tmp), "%s", comment);
	if (nftnl_udata_put_strz(ud, type, tmp))
		set(obj, nftnl_udata_buf_data(ud), nftnl_udata_buf_len(ud));
	nftnl_udata_buf_free(ud);
}

static void nft_rule_ud_set(void *obj, const void *data, uint32_t len)
{
	nftnl_rule_set_data(obj, NFTNL_RULE_USERDATA, data, len);
}

static void nft_elem_ud_set(void *obj, const void *data, uint32_t len)
{
	nftnl_set_elem_set(obj, NFTNL_SET_ELEM_USERDATA, data, len);
}

void nft_rule_comment(struct nftnl_rule *r, const char *comment)
{
	nft_udata_comment(NFTNL_UDATA_RULE_COMMENT, comment, nft_rule_ud_set, r);
}

void nft_elem_comment(struct nftnl_set_elem *e, const char *comment)
{
	nft_udata_comment(NFTNL_UDATA_SET_ELEM_COMMENT, comment, nft_elem_ud_set, e);
}
