/** Text escaped for XML/HTML content and attribute values (SVG labels, the HTML reports). */
export function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}
