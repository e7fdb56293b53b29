"""Entropy-coded deviations with per-row random access (``coding="entropy"``).

The GeDe split is kept: every row is a base ID plus a deviation, the bases
are stored as in the paper, and condensed samples are rows like any other.
What changes is how the deviation is stored.  Instead of its ``l_d`` raw
bits, each row's deviation values -- per column, the column's deviation
bits read as one small integer, cut into digits of at most 8 bits (most
significant first) -- are coded with static rANS, every digit with a
frequency table chosen by its slot and a context of digits decoded before
it in the same row, so each row still decodes on its own.  Rows are
byte-aligned rANS streams found in O(1) through a row index; the model
(frequency tables, quantised to ``2**prec``) is stored in the file and
counted in every size.

The modules, from the bottom up (each imports only modules listed before it):

:mod:`~gedenb.entropy.coder`
    static rANS: frequency tables, encoding symbol streams, the row index;
    nothing about images or tables.
:mod:`~gedenb.entropy.model`
    :class:`~gedenb.entropy.model.EntropyModel`, the schemes, digits and
    slots, context evaluation, the decoding kernels' packed parameters.
:mod:`~gedenb.entropy.image_models`
    image context models (schemes 1-5), zero runs, the image decoder.
:mod:`~gedenb.entropy.table_models`
    table context models (scheme 0): candidate contexts and their costs.
:mod:`~gedenb.entropy.serial`
    section MODL: models to and from bytes.
:mod:`~gedenb.entropy.fitting`
    fitting a model of either scheme, its estimated size, the greedy base
    selection under that size.
:mod:`~gedenb.entropy.deviations`
    encoding rows, the decodable container
    (:class:`~gedenb.entropy.deviations.EntropyCoded`), decoding rows: what
    :mod:`gedenb.entrogede` and :mod:`gedenb.store` call.
:mod:`~gedenb.entropy.predict`
    per-row invertible code transforms of tables (section PRED).
"""
