// Walks every focusable element (after one real Tab press, so that programmatic focus counts as
// keyboard focus and :focus-visible applies) and measures its focus ring against the background
// just outside it: WCAG 1.4.11 asks for 3:1. Used by tests/browser/test_a11y.py.
function rgba(text) {
  const m = text.match(/rgba?\(([^)]+)\)/);
  if (!m) return null;
  const p = m[1].split(",").map(s => parseFloat(s));
  return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
}
function over(top, bottom) {
  const a = top.a;
  return {r: top.r * a + bottom.r * (1 - a), g: top.g * a + bottom.g * (1 - a),
          b: top.b * a + bottom.b * (1 - a), a: 1};
}
function background(element) {
  const layers = [];
  for (let node = element; node && node.nodeType === 1; node = node.parentElement) {
    const colour = rgba(getComputedStyle(node).backgroundColor);
    if (colour && colour.a > 0) { layers.push(colour); if (colour.a >= 1) break; }
  }
  let result = {r: 255, g: 255, b: 255, a: 1};
  for (let i = layers.length - 1; i >= 0; i--) result = over(layers[i], result);
  return result;
}
function luminance(c) {
  const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
}
function contrast(a, b) {
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}
const selector = "a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), " +
  "select:not([disabled]), textarea:not([disabled]), summary, [tabindex]:not([tabindex='-1'])";
const problems = [];
let checked = 0;
for (const element of document.querySelectorAll(selector)) {
  const box = element.getBoundingClientRect();
  if (box.width === 0 || box.height === 0 || getComputedStyle(element).visibility === "hidden") continue;
  if (element.closest(".skip-link") || element.closest(".swagger-ui")) continue;
  element.focus();
  if (document.activeElement !== element) continue;
  checked++;
  const classes = typeof element.className === "string" ? element.className.trim() : "";
  const name = element.tagName.toLowerCase() + (element.id ? "#" + element.id : "") +
    (classes ? "." + classes.split(/\s+/).join(".") : "");
  if (!element.matches(":focus-visible")) { problems.push(name + ": not :focus-visible"); continue; }
  const style = getComputedStyle(element);
  const width = parseFloat(style.outlineWidth);
  if (style.outlineStyle === "none" || !(width >= 2)) {
    problems.push(`${name}: no focus outline (${style.outlineStyle} ${style.outlineWidth})`);
    continue;
  }
  const ring = rgba(style.outlineColor);
  const behind = background(element.parentElement || element);
  const ratio = contrast(over(ring, behind), behind);
  if (ratio < 3) problems.push(`${name}: focus ring ${style.outlineColor} is ${ratio.toFixed(2)}:1 against its background`);
}
document.activeElement && document.activeElement.blur();
return {checked, problems};
