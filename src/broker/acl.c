/* Access rules: which rights a user has on an address.
 *
 * Right by right, the first matching rule that names the right decides,
 * deny before allow; what no rule names is refused.  This is qpidd's
 * first-match model, narrowed to rights so a rule can carve out one
 * right ("nobody receives from queue.audit*") above a broad grant. */
#include <lepton/broker.h>

#include <string.h>

/* "*" matches everything, "abc*" anything starting with "abc", anything
 * else itself. */
static bool
pattern_match(const char *pattern, const char *s)
{
    size_t n = strlen(pattern);
    if (n > 0 && pattern[n - 1] == '*')
        return strncmp(pattern, s, n - 1) == 0;
    return strcmp(pattern, s) == 0;
}

unsigned
lep_acl_check(const lep_acl_rule_t *rules, size_t n, const char *user, const char *address)
{
    if (n == 0)
        return LEP_ACL_ALL;
    if (!user)
        user = "anonymous"; /* a connection that skipped SASL */
    if (!address)
        address = "";
    unsigned decided = 0, granted = 0;
    for (size_t i = 0; i < n && decided != LEP_ACL_ALL; i++) {
        const lep_acl_rule_t *r = &rules[i];
        if (!r->user || !r->address || !pattern_match(r->user, user) ||
            !pattern_match(r->address, address))
            continue;
        decided |= r->deny & LEP_ACL_ALL;
        unsigned allow = r->allow & LEP_ACL_ALL & ~decided;
        granted |= allow;
        decided |= allow;
    }
    return granted;
}
