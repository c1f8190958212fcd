// Runs axe-core (injected into the page by tests/browser/test_a11y.py) with the given tags and
// hands back its violations, a few nodes each, for the test's failure message.
const done = arguments[arguments.length - 1];
if (typeof axe === "undefined") { done({error: "axe-core was not injected into the page"}); return; }
axe.run(document, {runOnly: {type: "tag", values: arguments[0]}, resultTypes: ["violations"]})
  .then(result => done({violations: result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 12).map(n => ({target: n.target.join(" "), summary: n.failureSummary})),
  }))}))
  .catch(error => done({error: String(error)}));
