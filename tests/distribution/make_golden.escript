#!/usr/bin/env escript
%% -*- erlang -*-
%%! -sname golden_etf -setcookie golden_etf
%%
%% Writes golden_etf.json next to this file: terms encoded by a real term_to_binary (OTP 25),
%% each with the Python value otp.dist.etf must decode it to (a Python expression).
%%
%%   epmd -address 127.0.0.1 -daemon     # else erl starts one on 0.0.0.0
%%   escript tests/distribution/make_golden.escript
%%
%% Each vector: name, hex (the bytes, with 131), python (the expected value), canonical (true
%% when encode(decode(bytes)) must give the same bytes back), compressed (the zlib level
%% the bytes were compressed with, 0 for none).
-mode(compile).

main(_) ->
    Dir = filename:dirname(escript:script_name()),
    Vectors = vectors(),
    Json = ["[\n", lists:join(",\n", [vector_json(V) || V <- Vectors]), "\n]\n"],
    ok = file:write_file(filename:join(Dir, "golden_etf.json"), Json),
    io:format("~b vectors~n", [length(Vectors)]).

-define(V2, [{minor_version, 2}]).

%% {Name, Bytes, Term, Canonical, Compressed}
vectors() ->
    Self = self(),
    Other = spawn(fun() -> receive stop -> ok end end),
    Serial = list_to_pid("<0.1000.5>"),
    Ref = make_ref(),
    Alias = alias(),
    Port = hd(erlang:ports()),
    Y = 42,
    LocalFun = fun(X) -> X + Y end,
    Node = atom_to_binary(node(), utf8),
    NL = byte_size(Node),
    Modern = [
        {small_int_0, 0}, {small_int_255, 255}, {int_256, 256}, {int_minus_1, -1},
        {int_max32, 2147483647}, {int_min32, -2147483648},
        {big_2_31, 2147483648}, {big_minus_2_31_minus_1, -2147483649},
        {big_2_64, 1 bsl 64}, {big_minus_2_64, -(1 bsl 64)},
        {small_big_255_bytes, (1 bsl 2040) - 1}, {large_big_256_bytes, 1 bsl 2040},
        {large_big_negative, -(1 bsl 4000) - 12345},
        {float_zero, 0.0}, {float_1_5, 1.5}, {float_tiny, -2.5e-300}, {float_huge, 1.0e308},
        {float_third, 1 / 3},
        {atom_ok, ok}, {atom_empty, ''}, {atom_space, 'hello world'},
        {atom_unicode, binary_to_atom(<<"héllo"/utf8>>, utf8)},
        {atom_255_chars_utf8, binary_to_atom(binary:copy(<<"ö"/utf8>>, 255), utf8)},
        {atom_true, true}, {atom_false, false}, {atom_undefined, undefined}, {atom_nil, nil},
        {tuple_empty, {}}, {tuple_pair, {1, 2}}, {tuple_nested, {a, {b, {c, [d]}}, <<"e">>}},
        {tuple_large_300, erlang:make_tuple(300, x)},
        {list_empty, []}, {list_big_ints, [1, 300, -1, 1 bsl 70]},
        {list_atoms, [a, b, c]}, {list_nested, [[], [[]], [1, [2, [3]]]]},
        {improper_atom_tail, [a | b]}, {improper_ints, [1, 2 | 3]},
        {improper_alias_tag, [alias | Ref]}, {improper_alias_tag_nested, [[alias | Ref] | foo]},
        {binary_empty, <<>>}, {binary_hello, <<"hello">>}, {binary_bytes, <<0, 255, 128>>},
        {binary_utf8, <<"héllo wörld"/utf8>>}, {binary_1k, binary:copy(<<"0123456789abcdef">>, 64)},
        {bits_3, <<5:3>>}, {bits_9, <<255, 1:1>>},
        {map_empty, #{}}, {map_atoms, #{a => 1, b => <<"two">>, c => [3]}},
        {map_nested, #{outer => #{inner => #{deep => {1, 2}}}}},
        {map_list_key, #{[1, 2] => x, [] => empty}},
        {map_map_key, #{#{a => 1} => y}},
        {map_tuple_with_list_key, #{{k, [1]} => z}},
        {map_mixed_keys, #{1 => a, <<"b">> => c, {t} => d, 2.5 => e}},
        {map_40_keys, maps:from_list([{N, N * N} || N <- lists:seq(1, 40)])},
        {pid_self, Self}, {pid_other, Other}, {pid_serial, Serial},
        {ref_make_ref, Ref}, {ref_alias, Alias},
        {gen_call, {'$gen_call', {Self, Ref}, {get_value, <<"some_binary_key_xyz">>}}},
        {gen_call_alias_tag, {'$gen_call', {Self, [alias | Alias]}, {get, key}}},
        {send_sender_control, {22, Self, Other}},
        {export_fun, fun erlang:abs/1}, {export_fun_2, fun lists:map/2},
        {fun_with_free_var, LocalFun},
        {fun_in_tuple, {f, LocalFun, fun erlang:node/0}}
    ],
    Strings = [
        %% Erlang writes lists of bytes as STRING_EXT; we write LIST_EXT.
        {string_ints, [1, 2, 3]}, {string_hello, "hello"}, {string_latin1, "héllo"},
        {list_unicode_chars, "日本"}  % not bytes: a LIST_EXT of INTEGER_EXT (canonical)
    ],
    Canon = [{Name, term_to_binary(T, ?V2), T, not has_byte_list(T), 0} || {Name, T} <- Modern]
        ++ [{Name, term_to_binary(T, ?V2), T, Name =:= list_unicode_chars, 0}
            || {Name, T} <- Strings],
    Port1 = {port, term_to_binary(Port, ?V2), Port, false, 0},  % NEW_PORT: we write V4_PORT
    Compressed = [
        {compressed_atoms, term_to_binary(lists:duplicate(100, hello), [{compressed, 6} | ?V2]),
         lists:duplicate(100, hello), true, 6},
        {compressed_binary, term_to_binary({data, binary:copy(<<"abc">>, 1000)},
                                           [{compressed, 9} | ?V2]),
         {data, binary:copy(<<"abc">>, 1000)}, true, 9}
    ],
    Legacy = [
        {float_ext_99, term_to_binary(3.14, [{minor_version, 0}])},
        {atom_ext_100, term_to_binary(abc, [{minor_version, 1}])},
        {atom_ext_100_latin1, term_to_binary(binary_to_atom(<<"café"/utf8>>, utf8),
                                             [{minor_version, 1}])},
        {small_atom_ext_115, <<131, 115, 4, "caf", 233>>},
        {atom_utf8_ext_118_short, <<131, 118, 0, 2, "ok">>},
        {pid_ext_103, <<131, 103, 119, NL, Node/binary, 0, 0, 0, 77, 0, 0, 0, 1, 2>>},
        {port_ext_102, <<131, 102, 119, NL, Node/binary, 0, 0, 0, 9, 3>>},
        {reference_ext_101, <<131, 101, 119, NL, Node/binary, 0, 0, 0, 33, 1>>},
        {new_reference_ext_114, <<131, 114, 0, 3, 119, NL, Node/binary, 2,
                                  0, 1, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3>>},
        {bit_binary_8_bits, <<131, 77, 0, 0, 0, 2, 8, 1, 2>>},
        {list_with_list_tail, <<131, 108, 0, 0, 0, 1, 97, 1, 108, 0, 0, 0, 1, 97, 2, 106>>}
    ],
    Legacy1 = [{Name, B, binary_to_term(B), false, 0} || {Name, B} <- Legacy],
    V4Port = <<131, 120, 119, NL, Node/binary, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 7>>,
    Port2 = {v4_port_ext_120, V4Port, binary_to_term(V4Port), true, 0},
    Canon ++ [Port1, Port2] ++ Compressed ++ Legacy1.

%% Whether a term holds a non-empty list of bytes: Erlang writes it as STRING_EXT, we as LIST_EXT.
has_byte_list([]) -> false;
has_byte_list(L) when is_list(L) -> is_bytes(L) orelse has_byte_list_in(L);
has_byte_list(T) when is_tuple(T) -> lists:any(fun has_byte_list/1, tuple_to_list(T));
has_byte_list(M) when is_map(M) ->
    lists:any(fun has_byte_list/1, maps:keys(M) ++ maps:values(M));
has_byte_list(_) -> false.

is_bytes([]) -> true;
is_bytes([X | T]) when is_integer(X), X >= 0, X < 256 -> is_bytes(T);
is_bytes(_) -> false.

has_byte_list_in([H | T]) -> has_byte_list(H) orelse has_byte_list_in(T);
has_byte_list_in(Tail) -> has_byte_list(Tail).

vector_json({Name, Bytes, Term, Canonical, Level}) ->
    io_lib:format("  {\"name\": \"~s\", \"hex\": \"~s\", \"canonical\": ~s, \"compressed\": ~b,"
                  "\n   \"python\": ~s}",
                  [Name, hex(Bytes), Canonical, Level, json_str(py(Term))]).

hex(B) -> [io_lib:format("~2.16.0b", [X]) || <<X>> <= B].

json_str(S) ->
    [$", [case C of $" -> "\\\""; $\\ -> "\\\\"; _ -> C end || C <- lists:flatten(S)], $"].

%% The Python value a term decodes to, as a Python expression.
py(true) -> "True";
py(false) -> "False";
py(undefined) -> "None";
py(A) when is_atom(A) -> ["Atom(", py_str(atom_to_list(A)), ")"];
py(I) when is_integer(I) -> integer_to_list(I);
py(F) when is_float(F) -> float_to_list(F, [short]);
py(B) when is_binary(B) -> ["bytes.fromhex('", hex(B), "')"];
py(B) when is_bitstring(B) ->
    Bits = bit_size(B) rem 8,
    Pad = 8 - Bits,
    ["BitBinary(bytes.fromhex('", hex(<<B/bitstring, 0:Pad>>), "'), ", integer_to_list(Bits), ")"];
py(T) when is_tuple(T) -> ["(", [[py(E), ", "] || E <- tuple_to_list(T)], ")"];
py(L) when is_list(L) -> py_list(L, []);
py(M) when is_map(M) ->
    ["{", lists:join(", ", [[py_key(K), ": ", py(V)] || {K, V} <- maps:to_list(M)]), "}"];
py(P) when is_pid(P) ->
    <<131, 88, Rest/binary>> = term_to_binary(P, ?V2),
    {Node, <<Id:32, Serial:32, Cr:32>>} = atom_bin(Rest),
    io_lib:format("Pid(~s, ~b, ~b, ~b)", [py_str(Node), Id, Serial, Cr]);
py(R) when is_reference(R) ->
    <<131, 90, Len:16, Rest/binary>> = term_to_binary(R, ?V2),
    {Node, <<Cr:32, Words:(4 * Len)/binary>>} = atom_bin(Rest),
    Ws = [integer_to_list(W) || <<W:32>> <= Words],
    io_lib:format("Ref(~s, (~s,), ~b)", [py_str(Node), lists:join(", ", Ws), Cr]);
py(P) when is_port(P) ->
    case term_to_binary(P, ?V2) of
        <<131, 89, Rest/binary>> ->
            {Node, <<Id:32, Cr:32>>} = atom_bin(Rest);
        <<131, 120, Rest/binary>> ->
            {Node, <<Id:64, Cr:32>>} = atom_bin(Rest)
    end,
    io_lib:format("Port(~s, ~b, ~b)", [py_str(Node), Id, Cr]);
py(F) when is_function(F) ->
    case erlang:fun_info(F, type) of
        {type, external} ->
            {module, M} = erlang:fun_info(F, module),
            {name, N} = erlang:fun_info(F, name),
            {arity, A} = erlang:fun_info(F, arity),
            io_lib:format("Export(~s, ~s, ~b)", [py(M), py(N), A]);
        {type, local} ->
            {module, M} = erlang:fun_info(F, module),
            {arity, A} = erlang:fun_info(F, arity),
            io_lib:format("FunLike(~s, ~b)", [py(M), A])
    end.

py_list([], Acc) -> ["[", lists:join(", ", lists:reverse(Acc)), "]"];
py_list([H | T], Acc) when is_list(T) -> py_list(T, [py(H) | Acc]);
py_list([H | T], Acc) -> ["ImproperList([", lists:join(", ", lists:reverse([py(H) | Acc])), "], ", py(T), ")"].

%% A map key: lists and maps as ListKey and MapKey, inside tuples too.
py_key(L) when is_list(L), L =:= [] -> "ListKey(())";
py_key(L) when is_list(L) -> ["ListKey((", [[py_key(E), ", "] || E <- L], "))"];
py_key(M) when is_map(M) ->
    ["MapKey([", lists:join(", ", [["(", py_key(K), ", ", py_key(V), ")"] || {K, V} <- maps:to_list(M)]), "])"];
py_key(T) when is_tuple(T) -> ["(", [[py_key(E), ", "] || E <- tuple_to_list(T)], ")"];
py_key(X) -> py(X).

atom_bin(<<119, L, Name:L/binary, Rest/binary>>) -> {unicode:characters_to_list(Name), Rest}.

py_str(Chars) ->
    ["'", [if C >= 32, C < 127, C =/= $', C =/= $\\ -> C;
              true -> io_lib:format("\\U~8.16.0b", [C]) end || C <- Chars], "'"].
