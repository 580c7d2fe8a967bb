// DOT to SVG without a system Graphviz: Graphviz compiled to WebAssembly (@viz-js/viz), loaded
// only when a picture is asked for, so every other command starts without it.
import { NsdnsError } from '../errors.js';

/**
 * The SVG of a DOT text. A DOT Graphviz refuses, or a label it could not read (it then draws the
 * label's source instead, with status "success"), is an internal error: graphDot wrote it.
 */
export async function renderSvg(dot: string): Promise<string> {
  const { instance } = await import('@viz-js/viz');
  const viz = await instance();
  const result = viz.render(dot, { format: 'svg', engine: 'dot' });
  const errors = result.errors.filter((e) => e.level !== 'warning');
  if (result.status !== 'success' || errors.length > 0) {
    const why = errors.map((e) => e.message).join('; ').slice(0, 500);
    throw new NsdnsError('ERR_INTERNAL', `Graphviz could not draw the networks: ${why}`);
  }
  return withFallbackFonts(result.output);
}

/**
 * graphDot sizes text by Verdana's widths, the widest of the common sans fonts, so the text fits
 * its boxes in any of them; Graphviz writes the one family, and a viewer without Verdana would
 * fall back to its default serif. Names are escaped text, never an attribute: this cannot match them.
 */
function withFallbackFonts(svg: string): string {
  return svg.replaceAll('font-family="Verdana"', 'font-family="Verdana,DejaVu Sans,Arial,Helvetica,sans-serif"');
}
