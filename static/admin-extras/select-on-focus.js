// Select the whole value of <input data-select-on-focus> when it gets focus (the new API key's
// secret, to copy). A file rather than an onfocus attribute: the CSP allows no inline script.
document.addEventListener("focusin", function (event) {
  if (event.target.matches && event.target.matches("input[data-select-on-focus]")) {
    event.target.select();
  }
});
